import json

import pytest

from rdvae.cli import main
from rdvae.cli import quickstart as quickstart_module

TINY = ["--dataset", "digits", "--set", "binarize=static", "--set", "latent_dim=2", "--set",
        "model.hidden=[16]", "--set", "epochs=1", "--set", "batch_size=256", "--no-progress"]


def _last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_sweep_continue_and_plot(tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = ["sweep", *TINY, "--grid", "family=mlp,zzz", "--grid", "beta=0.5,2", "--workers", "1",
            "--out", str(out), "--json"]
    assert main(argv) == 0   # some runs succeeded: exit 0, and a line on stderr names the failed ones
    captured = capsys.readouterr()
    assert f"rdvae sweep: 2 of 4 runs failed; see the error column of {out}/results.csv\n" in captured.err
    captured = captured.out
    result = json.loads(captured.strip().splitlines()[-1])
    assert captured.splitlines()[0].split() == ["family", "beta", "R", "D", "-ELBO", "status"]
    assert [(r["family"], r["beta"], r["status"]) for r in result["rows"]] == [
        ("mlp", 0.5, "done"), ("mlp", 2, "done"), ("zzz", 0.5, "failed"), ("zzz", 2, "failed")]
    assert "unknown family 'zzz'" in result["rows"][2]["error"]
    spec = json.loads((out / "sweep.json").read_text())
    assert spec["base"]["model.hidden"] == [16] and spec["fields"] == ["family", "beta"]

    assert main(["sweep", "--out", str(out), "--json", "--no-progress"]) == 0  # continue from sweep.json
    again = _last_json(capsys)
    assert len(again["skipped"]) == 2 and again["trained"] == [] and len(again["failed"]) == 2

    assert main(["plot", str(out), "--no-grids", "--format", "png", "--json"]) == 0
    plotted = _last_json(capsys)
    assert sorted(p.rsplit("/", 1)[1] for p in plotted["files"]) == ["elbo_rate.png", "rd_plane.png"]


def test_a_sweep_in_which_every_run_failed_exits_2(tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = ["sweep", *TINY, "--grid", 'model.activation="bogus","nope"', "--workers", "1", "--out", str(out)]
    assert main([*argv, "--json"]) == 2
    captured = capsys.readouterr()
    result = json.loads(captured.out.strip().splitlines()[-1])   # --json: the report is still the last line
    assert [r["status"] for r in result["rows"]] == ["failed", "failed"] and len(result["failed"]) == 2
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in captured.err, captured.err
    assert err[0].startswith("rdvae sweep: error: all 2 runs failed "
                             "(runs/000-activation=bogus: ConfigError: ")
    assert "unknown activation 'bogus'" in err[0]
    assert err[0].endswith(f"see the error column of {out}/results.csv and the traceback in a failed run's "
                           "runs/NAME/error.log")

    rows = {r["run_dir"]: r for r in result["rows"]}
    for run_dir, row in rows.items():
        assert row["error"].endswith(f"(while training; full traceback in {run_dir}/error.log)")
        assert "Traceback" in (out / run_dir / "error.log").read_text()

    assert main(["sweep", "--out", str(out), "--no-progress"]) == 2   # retried, failed again: still 2
    assert "all 2 runs failed" in capsys.readouterr().err


def test_a_sweep_whose_only_run_failed_says_so(tmp_path, capsys):
    argv = ["sweep", *TINY, "--set", "beta=-1", "--workers", "1", "--out", str(tmp_path / "s")]
    assert main(argv) == 2   # a config error: recorded without a run folder, no error.log to point at
    err = capsys.readouterr().err
    assert err.startswith("rdvae sweep: error: its only run failed (runs/000: ConfigError: beta must be"), err
    assert "error.log" not in err and not (tmp_path / "s" / "runs" / "000").exists()


def test_sweep_from_a_toml_spec(tmp_path, capsys):
    spec = tmp_path / "sweep.toml"
    spec.write_text('[base]\ndataset = "digits"\nbinarize = "static"\nlatent_dim = 2\nepochs = 1\n'
                    '"model.hidden" = [16]\n[grid]\nbeta = [0.5, 2.0]\n[[zip]]\nseed = [0]\nlr = [0.002]\n')
    assert main(["sweep", "--config", str(spec), "--workers", "1", "--out", str(tmp_path / "s"),
                 "--no-progress", "--json"]) == 0
    rows = _last_json(capsys)["rows"]
    assert [(r["beta"], r["seed"], r["lr"], r["status"]) for r in rows] == [(0.5, 0, 0.002, "done"),
                                                                            (2.0, 0, 0.002, "done")]


@pytest.mark.parametrize("argv,message", [
    (["sweep", "--grid", "beta=1"], "needs --out"),
    (["sweep", "--grid", "beta", "--out", "x"], "expected KEY=V1,V2"),
    (["sweep", "--out", "empty"], "no sweep.json"),
    (["sweep", "--config", "missing.toml", "--out", "x"], "does not exist"),
    (["plot", "nowhere"], "no results.csv"),
])
def test_sweep_and_plot_errors_are_one_clear_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_new_grid_into_an_old_sweep_is_refused(tmp_path, capsys):
    out = str(tmp_path / "s")
    assert main(["sweep", *TINY, "--grid", "beta=1", "--workers", "1", "--out", out]) == 0
    assert main(["sweep", *TINY, "--grid", "beta=2", "--out", out]) == 2
    assert "already holds a different sweep" in capsys.readouterr().err


def test_quickstart_small(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(quickstart_module, "BETAS", [0.5, 2.0])
    monkeypatch.setattr(quickstart_module, "BASE", {**quickstart_module.BASE, "epochs": 1, "latent_dim": 2,
                                                    "model.hidden": [16]})
    out = tmp_path / "qs"
    assert main(["quickstart", "--out", str(out), "--workers", "1", "--no-progress", "--json"]) == 0
    captured = capsys.readouterr().out
    result = json.loads(captured.strip().splitlines()[-1])
    assert ["beta", "R", "D", "-ELBO", "status"] in [line.split() for line in captured.splitlines()]
    assert [r["beta"] for r in result["rows"]] == [0.5, 2.0]
    for name in ("rd_plane", "elbo_rate", "reconstructions", "samples"):
        assert (out / "figures" / f"{name}.png").exists() and (out / "figures" / f"{name}.svg").exists()


@pytest.mark.slow
def test_quickstart_traces_the_tradeoff(tmp_path, capsys):
    """The real quickstart: R falls and D rises with beta (noise allowed between neighbours)."""
    assert main(["quickstart", "--out", str(tmp_path / "qs"), "--no-progress", "--json"]) == 0
    rows = _last_json(capsys)["rows"]
    assert [r["beta"] for r in rows] == quickstart_module.BETAS
    rate = [r["rate"] for r in rows]
    distortion = [r["distortion"] for r in rows]
    assert all(b <= a + 0.5 for a, b in zip(rate, rate[1:], strict=False)) and rate[0] > rate[-1] + 10
    assert all(b >= a - 0.5 for a, b in zip(distortion, distortion[1:], strict=False))
    assert distortion[-1] > distortion[0] + 10
