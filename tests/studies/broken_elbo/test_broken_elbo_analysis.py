"""The broken-elbo analysis from rows alone: results CSVs (of the committed 34-run grid's format,
without the annealed column, and of later stages, with it) read, combined and assessed without any
trained model, annealed and unannealed runs of one family and beta kept as rows of their own."""

import csv
import json

import pytest

from rdvae.studies.broken_elbo import analysis
from rdvae.studies.broken_elbo.study import grid_annealing

OLD_COLUMNS = ("family", "code", "beta", "rate", "distortion", "elbo", "mutual_info", "active_units",
               "regime", "class_agreement", "class_chance", "class_kappa", "on_frontier", "epochs",
               "epochs_trained", "converged", "plateau_gain", "train_seconds", "run_dir")


def _write(path, columns, rows):
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _old(code, beta, rate, distortion, index, **extra):
    """A row as the 34-run grid's CSV has it (regime and frontier as judged then)."""
    return {"family": "mlp" + code, "code": code, "beta": beta, "rate": rate, "distortion": distortion,
            "elbo": -(rate + distortion), "mutual_info": min(rate, 9.21), "regime": "semantic encoder",
            "class_agreement": 0.9, "class_chance": 0.1, "on_frontier": "False", "epochs": 10,
            "epochs_trained": 10, "converged": "False",
            "run_dir": f"runs/{index:03d}-family={code}_beta={beta}", **extra}


@pytest.fixture
def grid_csv(tmp_path):
    rows = [_old("-+v", 0.1, 127.2, 31.1, 0), _old("-+v", 1, 4.2, 80.5, 1), _old("-+-", 1, 3.0, 82.8, 2),
            _old("---", 0.5, 33.0, 65.8, 3, epochs=60), _old("---", 1, 21.5, 76.2, 4, epochs=60)]
    return _write(tmp_path / "old.csv", OLD_COLUMNS, rows)


def test_an_old_csv_is_read_with_the_grids_annealing(grid_csv):
    assert grid_annealing("cpu") == {"+": True, "-": False}
    rows = analysis.read_results(grid_csv, grid_annealing("cpu"))
    assert [r["annealed"] for r in rows] == [True, True, True, False, False]
    assert {r["stage"] for r in rows} == {"grid"}
    assert rows[0]["beta"] == 0.1 and rows[0]["epochs"] == 10 and rows[0]["converged"] is False
    with pytest.raises(ValueError, match="line 2: the run has no annealed value"):
        analysis.read_results(grid_csv)
    with pytest.raises(Exception, match="with and without KL annealing"):
        grid_annealing("paper")


def test_a_bad_cell_is_refused_naming_it(tmp_path):
    path = _write(tmp_path / "bad.csv", (*OLD_COLUMNS, "annealed"),
                  [{**_old("-+v", 1, 4.2, 80.5, 1), "annealed": "maybe"}])
    with pytest.raises(ValueError, match="line 2: annealed='maybe'"):
        analysis.read_results(path)
    path = _write(tmp_path / "bad2.csv", ("family", "beta"), [{"family": "mlp-+v", "beta": 1}])
    with pytest.raises(ValueError, match="lacks the column"):
        analysis.read_results(path)


def test_a_later_stage_adds_rows_of_its_own_and_the_claims_follow(grid_csv, tmp_path):
    new = [{**_old("-+-", 1, 0.01, 84.0, 0, converged="True"), "mutual_info": 0.005, "annealed": "false",
            "stage": "unannealed", "run_dir": "runs/unannealed-family=-+-_beta=1"},
           {**_old("-+v", 1, 0.02, 84.3, 0), "mutual_info": 0.01, "annealed": "False", "stage": "unannealed",
            "run_dir": "runs/unannealed-family=-+v_beta=1"},
           {**_old("-+v", 1, 4.2, 80.4, 1), "annealed": "True"}]   # the grid's run again: replaces its row
    later = _write(tmp_path / "later.csv", analysis.RESULT_COLUMNS, new)
    summary = analysis.reanalyse([grid_csv, later], tmp_path / "out", figures=False)
    assert len(summary["runs"]) == 7 and summary["stages"] == ["grid", "unannealed"]
    both = [r for r in summary["runs"] if r["code"] == "-+v" and r["beta"] == 1]
    assert sorted(r["annealed"] for r in both) == [False, True]
    assert next(r for r in both if r["annealed"])["distortion"] == 80.4
    verdicts = {c["key"]: c["holds"] for c in summary["claims"]}
    assert verdicts["ignore-annealed"] is False       # `-+-` keeps 3 nats with annealing
    assert verdicts["ignore-unannealed"] is True      # and drops the code without it
    assert verdicts["low-rate"] is None and verdicts["corner"] is None
    written = list(csv.DictReader(open(tmp_path / "out" / "broken_elbo_results.csv")))
    assert {r["annealed"] for r in written} == {"True", "False"} and len(written) == 7
    assert json.loads((tmp_path / "out" / "analysis.json").read_text())["claims_tally"]["tested"] >= 2
    report = (tmp_path / "out" / "analysis.md").read_text()
    assert "runs it rests on" in report and "| 1 | no |" in report   # fig. 4's table: -+v at 1, unannealed


def test_rd_labels_mark_the_unannealed_twin_only():
    rows = [{"family": "mlp-+v", "beta": 1.0, "annealed": True},
            {"family": "mlp-+v", "beta": 1.0, "annealed": False},
            {"family": "mlp---", "beta": 1.0, "annealed": False}]
    assert analysis.rd_labels(rows) == ["β=1", "β=1, no anneal", "β=1"]


def test_the_analysis_draws_figs_3a_and_3b_from_rows(grid_csv, tmp_path):
    summary = analysis.reanalyse([grid_csv], tmp_path / "out")
    names = sorted(p.rsplit("/", 1)[1] for p in summary["figures"])
    assert names == ["elbo_rate.png", "elbo_rate.svg", "rd_plane.png", "rd_plane.svg"]
