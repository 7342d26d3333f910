"""The helpers every study shares: the scale check, the claims table, markdown tables and CSV rows."""

import csv

import pytest

from rdvae.studies.common import (
    check_scale,
    claim,
    claims_table,
    markdown_table,
    records_table,
    verdict,
    write_csv,
)


def test_a_scale_is_one_of_the_studies_scales():
    assert check_scale("smoke") == "smoke"
    with pytest.raises(ValueError, match="scale must be one of smoke, cpu, paper, got 'gpu'"):
        check_scale("gpu")


def test_the_claims_table_says_yes_no_or_cannot_tell():
    claims = [claim("R grows", "fig. 3", "R 1 -> 2", True), claim("D falls", "fig. 4", "D 2 -> 3", False),
              claim("a semantic encoder", "fig. 5", "run missing", None)]
    assert [verdict(c["holds"]) for c in claims] == ["yes", "**no**", "cannot tell"]
    assert claims_table(claims, paper="paper (CelebA)").splitlines() == [
        "| claim | paper (CelebA) | here | holds? |", "|---|---|---|---|",
        "| R grows | fig. 3 | R 1 -> 2 | yes |", "| D falls | fig. 4 | D 2 -> 3 | **no** |",
        "| a semantic encoder | fig. 5 | run missing | cannot tell |"]


def test_markdown_tables_of_cells_and_of_records():
    assert markdown_table(["a", "b"], [[1, ""], ["x", "y"]]) == "| a | b |\n|---|---|\n| 1 |  |\n| x | y |"
    rows = [{"model": "m", "fid": 1.23456, "epochs": 3}, {"model": "n", "fid": None}]
    assert records_table(rows, ["model", "fid", "epochs"], number="{:.2f}").splitlines()[2:] == [
        "| m | 1.23 | 3 |", "| n | - | - |"]


def test_rows_are_written_as_csv_in_the_columns_given(tmp_path):
    path = tmp_path / "rows.csv"
    write_csv(path, [{"a": 1, "b": 2.5, "extra": "ignored"}, {"a": 3}], ["a", "b"])
    with open(path) as f:
        assert list(csv.DictReader(f)) == [{"a": "1", "b": "2.5"}, {"a": "3", "b": ""}]
    assert not (tmp_path / "rows.csv.tmp").exists()
