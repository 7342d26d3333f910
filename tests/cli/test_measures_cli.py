"""`rdvae eval --measure NAME --measure-option NAME.KEY=VALUE` and `rdvae eval SWEEP`: a user's measure
in a plugin file, with no edit in rdvae, reaches summary.json, the sweep's results.csv, the report page and
the model card under its declared description; `--ais N` on a sweep makes ais_nll a column of results.csv;
the old flags are shorthands for measures; bad measure names and options are one clean line."""

import csv
import json
import re
import shutil

import pytest
import torch
from tests.helpers import need

from rdvae.cli import main
from rdvae.sweep import SweepSpec, run_sweep, sweep
from rdvae.train import load_run


@pytest.fixture(scope="module", autouse=True)
def measures_restored():
    """The plugin's measure is registered in this process by `rdvae eval --plugin`: take it out again
    after this module, so that later tests (the docs' own posterior-scale plugin) start without it."""
    from rdvae.evaluate.measures import MEASURES

    MEASURES.load_builtins()
    entries, aliases = dict(MEASURES._entries), dict(MEASURES._aliases)
    yield
    MEASURES._entries.clear()
    MEASURES._entries.update(entries)
    MEASURES._aliases.clear()
    MEASURES._aliases.update(aliases)


BASE = {"dataset": "digits", "binarize": "static", "family": "mlp", "latent_dim": 2, "model.hidden": [16],
        "epochs": 1, "batch_size": 256, "eval_batch_size": 500}
PLUGIN = '''\
import torch

from rdvae import register_measure


@register_measure("posterior-scale", keys={"posterior_scale": "mean posterior standard deviation"},
                  units="latent units")
def posterior_scale(model, x, *, seed, batch_size=1000, floor: float = 0.0):
    """The posterior's standard deviation, averaged over the examples and the latent dimensions."""
    with torch.no_grad():
        scale = torch.cat([model.encoder(xb).stddev for xb in x.split(batch_size)])
    return {"posterior_scale": scale.clamp_min(floor).mean().item()}
'''
LABEL = "mean posterior standard deviation (latent units)"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("measures")
    (root / "scale_measure.py").write_text(PLUGIN)
    run_sweep(root / "sweep", SweepSpec(base=BASE, points=sweep("beta", [0.5, 2.0])), workers=1,
              progress=False)
    return root


@pytest.fixture
def work(trained, tmp_path):
    shutil.copytree(trained, tmp_path / "w")
    return tmp_path / "w"


def _last_json(capsys):
    out = capsys.readouterr().out
    return json.loads(out.strip().splitlines()[-1]), out


def _table(sweep_dir):
    with open(sweep_dir / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return rows, list(rows[0])


def _scale(run_dir) -> float:
    """The plugin's figure computed here, on the run's final split."""
    run = load_run(run_dir, device="cpu")
    with torch.no_grad():
        return run.model.encoder(run.dataset.test).stddev.mean().item()


def test_a_users_measure_reaches_summary_results_report_and_card(work, capsys):
    plugin, sweep_dir = str(work / "scale_measure.py"), work / "sweep"
    assert main(["eval", str(sweep_dir), "--plugin", plugin, "--measure", "posterior-scale",
                 "--measure-option", "posterior-scale.floor=0.0", "--no-progress", "--json"]) == 0
    result, out = _last_json(capsys)
    assert f"{LABEL}" in out and len(result["runs"]) == 2
    runs = sorted((sweep_dir / "runs").iterdir())
    for run_dir in runs:
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["posterior_scale"] == pytest.approx(_scale(run_dir), rel=1e-5)
        assert summary["status"] == "done" and summary["rate"] is not None
    rows, header = _table(sweep_dir)
    assert [float(r["posterior_scale"]) for r in rows] == [
        json.loads((r / "summary.json").read_text())["posterior_scale"] for r in runs]
    assert header.index("rate") < header.index("posterior_scale") < header.index("family")   # registry order

    need("plotly", "report")
    assert main(["report", str(sweep_dir), "--plugin", plugin, "--out", str(work / "r.html")]) == 0
    page = (work / "r.html").read_text()
    data = json.loads(re.search(r'id="rdvae-data">(.*?)</script>', page, re.S).group(1))
    assert data["keys"]["posterior_scale"] == LABEL and LABEL in page
    plotted = sorted(r["posterior_scale"] for r in data["runs"])
    assert plotted == sorted(float(r["posterior_scale"]) for r in rows)

    assert main(["export", str(runs[0]), str(work / "pub"), "--plugin", plugin]) == 0
    card = (work / "pub" / "README.md").read_text()
    assert "- type: posterior_scale" in card and f"| {LABEL} |" in card and "| rate R (nats) |" in card


def test_ais_on_a_sweep_makes_ais_nll_a_column_of_results(work, capsys):
    sweep_dir = work / "sweep"
    summaries = {p: p.read_text() for p in sweep_dir.glob("runs/*/summary.json")}
    assert main(["eval", str(sweep_dir), "--ais", "3", "--ais-chains", "2", "--examples", "8",
                 "--no-progress", "--json"]) == 0
    result, _ = _last_json(capsys)
    rows, header = _table(sweep_dir)
    assert "ais_nll" in header and "subset" in header
    for row in rows:
        measured = result["runs"][row["run_dir"]]
        assert float(row["ais_nll"]) == pytest.approx(measured["ais_nll"])
        assert row["subset"] == measured["subset"] == "a random subset of 8 of 250 examples (seed 0)"
    # a subset's figures go to eval-test.json: the summaries (and the rows' R and D) are the runs' own
    assert {p: p.read_text() for p in summaries} == summaries
    assert all((p.parent / "eval-test.json").exists() for p in summaries)


def test_a_failing_run_of_a_sweep_is_reported_and_the_others_evaluated(work, capsys):
    first, second = sorted((work / "sweep" / "runs").iterdir())
    (second / "model.safetensors").unlink()
    assert main(["eval", str(work / "sweep"), "--iw-samples", "3", "--no-progress", "--json"]) == 0
    captured = capsys.readouterr()
    assert f"1 of 2 runs could not be evaluated (runs/{second.name})" in captured.err
    rows = {r["run_dir"]: r for r in _table(work / "sweep")[0]}
    assert rows[f"runs/{first.name}"]["iw_samples"] == "3" and rows[f"runs/{second.name}"]["iw_nll"] == ""
    (first / "model.safetensors").unlink()
    assert main(["eval", str(work / "sweep"), "--no-progress"]) == 2
    assert "all 2 finished runs" in capsys.readouterr().err


def test_the_old_flags_are_shorthands_for_measures(work, capsys):
    run = str(next((work / "sweep" / "runs").iterdir()))
    common = ["--examples", "40", "--no-progress", "--json"]
    assert main(["eval", run, "--iw-samples", "5", "--surgery", "--surgery-split-points", "0", *common]) == 0
    flags, out = _last_json(capsys)
    assert "ELBO surgery (nats):" in out and "IW-NLL, k=5" in out
    assert main(["eval", run, "--measure", "iw-nll", "--measure-option", "iw-nll.samples=5", "--measure",
                 "surgery", "--measure-option", "surgery.split_points=0", *common]) == 0
    assert _last_json(capsys)[0] == flags


@pytest.mark.parametrize("argv,message", [
    (["--measure", "aiss"], "--measure aiss: unknown measure 'aiss' (did you mean 'ais'?); registered: "),
    (["--measure", "ais", "--measure-option", "ais.stepz=3"],
     "unknown measure option(s) of 'ais': 'stepz' (did you mean 'steps'?)"),
    (["--measure-option", "ais.steps=3"], "measure 'ais' is not measured here; add --measure ais"),
    (["--measure-option", "steps=3"], "expected NAME.KEY=VALUE"),
    (["--measure", "ais"], "measure 'ais' needs option(s) steps (e.g. --measure-option ais.steps=VALUE)"),
    (["--measure", "iw-nll", "--measure-option", 'iw-nll.samples="ten"'],
     "measure 'iw-nll' (samples='ten'): samples must be an integer >= 1, got 'ten'"),
    (["--measure", "active-units", "--measure-option", "active-units.threshold=[1]"],
     "option threshold=[1] must be a number"),
])
def test_bad_measures_are_one_clean_line(trained, argv, message, capsys):
    run = str(next((trained / "sweep" / "runs").iterdir()))
    assert main(["eval", run, *argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.strip().count("\n") == 0, err


def test_betas_name_one_run_not_a_sweep(trained, capsys):
    assert main(["eval", str(trained / "sweep"), "--betas", "1", "--no-progress"]) == 2
    assert "--betas evaluates one multi-rate run" in capsys.readouterr().err


def test_list_measures_and_optimizers(capsys):
    assert main(["list", "measures", "--json"]) == 0
    listed = {r["name"]: r for r in _last_json(capsys)[0]["measures"]}
    assert list(listed)[:5] == ["rate-distortion", "mutual-info", "active-units", "iw-nll", "ais"]
    assert listed["iw-nll"]["options"] == "samples, rows=None"
    assert listed["rate-distortion"]["keys"]["rate"] == "rate R (nats)"
    assert listed["retrieval"]["needs"] == ["labels", "dataset"]
    assert main(["list", "optimizers"]) == 0
    out = capsys.readouterr().out
    assert "adam" in out and "betas=(0.9, 0.999)" in out and "sgd" in out
