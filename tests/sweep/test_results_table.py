import csv
import pathlib

import pytest

from rdvae.sweep.results import RUN_KEYS, ResultsTable, comparable, format_rows, summary_row


def _row(name, status="done", **values):
    return {"run_dir": f"runs/{name}", "status": status, "rate": 1.5, "distortion": 20.25,
            "elbo": -21.75, "family": "mlp", "beta": 0.5, "train_seconds": 3.0, **values}


def test_upsert_replaces_orders_and_round_trips(tmp_path):
    table = ResultsTable(tmp_path)
    order = ["runs/a", "runs/b", "runs/c"]
    table.upsert(_row("c"), order=order, swept=["beta"])
    table.upsert(_row("a", status="failed", rate=None, error="ConfigError: bad, \"quoted\"\nline"),
                 order=order, swept=["beta"])
    table.upsert(_row("a", rate=0.125, **{"model.hidden": [16, 8]}), order=order,
                 swept=["beta", "model.hidden"])
    rows = table.read()
    assert [r["run_dir"] for r in rows] == ["runs/a", "runs/c"]  # one row per run, grid order
    assert rows[0]["status"] == "done" and rows[0]["rate"] == 0.125 and rows[0]["error"] is None
    assert rows[0]["model.hidden"] == [16, 8] and rows[1]["model.hidden"] is None
    assert rows[1]["beta"] == 0.5 and rows[1]["distortion"] == 20.25
    header = next(csv.reader(open(table.path)))
    assert header[:4] == ["run_dir", "status", "beta", "model.hidden"] and header[-1] == "error"
    assert all(k in header for k in RUN_KEYS)
    assert comparable(rows[0]).keys() == rows[0].keys() - {"train_seconds"}


def test_failed_write_leaves_previous_table_intact(tmp_path, monkeypatch):
    table = ResultsTable(tmp_path)
    table.upsert(_row("a"))
    before = table.path.read_text()

    class Crash(Exception):
        pass

    real_write_text = pathlib.Path.write_text

    def crashing_write_text(self, text, *args, **kwargs):
        real_write_text(self, text[:len(text) // 2])
        raise Crash  # the process dies half-way through writing the table

    monkeypatch.setattr(pathlib.Path, "write_text", crashing_write_text)
    with pytest.raises(Crash):
        table.upsert(_row("b"))
    assert table.path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".results.lock", "results.csv"]


def test_unknown_status_refused(tmp_path):
    with pytest.raises(ValueError, match="status"):
        ResultsTable(tmp_path).upsert(_row("a", status="running"))


def test_format_rows_shows_figures_and_errors():
    text = format_rows([_row("a"), _row("b", status="failed", rate=None, distortion=None, elbo=None,
                                          error="ConfigError: unknown family 'q'")], ["beta"])
    lines = text.splitlines()
    assert lines[0].split() == ["beta", "R", "D", "-ELBO", "status"]
    assert lines[2].split() == ["0.5", "1.50", "20.25", "21.75", "done"]
    assert "failed: ConfigError: unknown family 'q'" in lines[3]


def test_columns_are_the_measures_keys_in_registry_order_then_the_run_keys(tmp_path):
    from rdvae.evaluate.measures import measure_keys

    table = ResultsTable(tmp_path)
    table.upsert(_row("a", iw_nll=80.5, ais_nll=80.25, mutual_info=1.0, multi_rate=True), swept=["beta"])
    header = next(csv.reader(open(table.path)))
    measured = [k for k in header if k in measure_keys()]
    assert measured == ["rate", "distortion", "elbo", "mutual_info", "iw_nll", "ais_nll"]   # registry order
    assert header[:3] == ["run_dir", "status", "beta"] and header[3:3 + len(measured)] == measured
    assert header[3 + len(measured):-2] == [k for k in RUN_KEYS if k != "beta"]
    assert header[-2:] == ["multi_rate", "error"]           # keys no measure declares, after the run keys


def test_update_keeps_the_cells_it_does_not_name(tmp_path):
    table = ResultsTable(tmp_path)
    table.upsert(_row("a", my_plugin_key=3.5))
    table.update({"run_dir": "runs/a", "status": "done", "ais_nll": 81.0})
    (row,) = table.read()
    assert (row["my_plugin_key"], row["ais_nll"], row["rate"]) == (3.5, 81.0, 1.5)
    table.upsert({"run_dir": "runs/a", "status": "done", "rate": 2.0})
    assert table.read()[0].get("ais_nll") is None            # upsert replaces the row


def test_a_summary_row_holds_measured_keys_and_a_subsets_only_where_the_summary_has_none():
    summary = {"rate": 1.0, "distortion": 2.0, "split": "test", "family": "mlp", "objective": "beta",
               "iw_nll": 3.0, "status": "done"}
    row = summary_row(summary)
    assert row["rate"] == 1.0 and row["iw_nll"] == 3.0 and "objective" not in row and "status" not in row
    assert all(k in row for k in RUN_KEYS)
    later = {"rate": 9.0, "iw_nll": 9.0, "ais_nll": 4.0, "split": "test", "subset": "a random subset"}
    row = summary_row(summary, later)
    assert (row["rate"], row["iw_nll"], row["ais_nll"], row["subset"]) == (1.0, 3.0, 4.0, "a random subset")
    assert "ais_nll" not in summary_row(summary, {**later, "split": "valid"})   # another split: not this row
