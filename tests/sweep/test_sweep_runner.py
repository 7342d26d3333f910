import json

import pytest

from rdvae.sweep import SweepError, SweepSpec, product, run_sweep, sweep
from rdvae.sweep.results import comparable
from rdvae.train import TrainConfig, train
from rdvae.train.config import nest_model_options


def _spec(base, **extra):
    return SweepSpec(base={**base, **extra},
                     points=product(sweep("family", ["mlp", "mlp-v"]), sweep("beta", [0.5, 2.0])))


def _forbid_training(monkeypatch):
    def no_train(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr("rdvae.train.train", no_train)


def test_sweep_rows_then_rerun_skips_everything(tmp_path, tiny_base, monkeypatch):
    spec = _spec(tiny_base)
    report = run_sweep(tmp_path, spec, workers=1, progress=False)
    assert [r["status"] for r in report.rows] == ["done"] * 4
    assert [(r["family"], r["beta"]) for r in report.rows] == [("mlp", 0.5), ("mlp", 2.0),
                                                               ("mlp-v", 0.5), ("mlp-v", 2.0)]
    for row in report.rows:
        summary = json.loads((tmp_path / row["run_dir"] / "summary.json").read_text())
        assert row["rate"] == pytest.approx(summary["rate"], rel=1e-12)
        assert row["elbo"] == pytest.approx(-(row["rate"] + row["distortion"]), rel=1e-6)
        assert row["dataset"] == "digits" and row["split"] == "test" and row["epochs"] == 1
    weights = {p: p.stat().st_mtime_ns for p in tmp_path.glob("runs/*/model.safetensors")}
    table = (tmp_path / "results.csv").read_text()

    _forbid_training(monkeypatch)
    again = run_sweep(tmp_path, None, workers=1, progress=False)  # continue from sweep.json
    assert len(again.skipped) == 4 and not again.trained and not again.failed
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("runs/*/model.safetensors")} == weights
    assert (tmp_path / "results.csv").read_text() == table

    (tmp_path / "results.csv").unlink()  # finished runs whose rows were lost: recorded, not retrained
    recovered = run_sweep(tmp_path, spec, workers=1, progress=False)
    assert len(recovered.recorded) == 4 and [comparable(r) for r in recovered.rows] == \
        [comparable(r) for r in report.rows]


def test_config_error_and_exception_are_recorded_and_retried(tmp_path, tiny_base, monkeypatch):
    spec = SweepSpec(base=tiny_base, points=[{"beta": 1.0}, {"beta": -1.0}, {"beta": 2.0},
                                             {"beta": 3.0, "epochs": 0}, {"beta": 4.0}])
    real_train = train
    calls, failures = [], []

    def flaky_train(config, out, **kwargs):
        calls.append(config.beta)
        if config.beta == 2.0 and not failures:
            failures.append(config.beta)
            raise RuntimeError("disk full (simulated)")
        return real_train(config, out, **kwargs)

    monkeypatch.setattr("rdvae.train.train", flaky_train)
    report = run_sweep(tmp_path, spec, workers=1, progress=False)
    status = {r["beta"]: (r["status"], r["error"]) for r in report.rows}
    assert len(report.rows) == 5
    assert status[1.0] == ("done", None) and status[4.0] == ("done", None)
    assert status[-1.0][0] == "failed" and "ConfigError: beta must be a positive" in status[-1.0][1]
    assert status[3.0][0] == "failed" and "epochs must be an integer >= 1" in status[3.0][1]
    # the row keeps the exception's type and message, the stage it failed in, and where the traceback is
    log = f"runs/{spec.names[2]}/error.log"
    assert status[2.0] == ("failed", f"RuntimeError: disk full (simulated) (while training; full traceback "
                                     f"in {log})")
    traceback = (tmp_path / log).read_text()
    assert "Traceback (most recent call last)" in traceback and "in flaky_train" in traceback
    assert traceback.rstrip().endswith("RuntimeError: disk full (simulated)")
    # config errors fail before the run has a folder: the row is all there is
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("runs/*/error.log")] == [log]
    failed_row = next(r for r in report.rows if r["beta"] == -1.0)
    assert failed_row["family"] == "mlp" and failed_row["rate"] is None and failed_row["seed"] == 0

    calls.clear()
    retry = run_sweep(tmp_path, None, workers=1, progress=False)
    assert calls == [2.0]  # only the failed run is trained again; config errors fail again at once
    assert {r["beta"]: r["status"] for r in retry.rows} == {1.0: "done", -1.0: "failed", 2.0: "done",
                                                            3.0: "failed", 4.0: "done"}
    assert not (tmp_path / log).exists()   # the run succeeded: no stale error.log


def test_a_point_that_fails_in_a_builder_keeps_its_message_and_traceback(tmp_path, tiny_base):
    spec = SweepSpec(base=tiny_base, points=sweep("model.activation", ["tanh", "bogus"]))
    report = run_sweep(tmp_path, spec, workers=1, progress=False)
    good, bad = report.rows
    assert good["status"] == "done" and good["error"] is None
    assert not (tmp_path / good["run_dir"] / "error.log").exists()
    assert bad["status"] == "failed" and "unknown activation 'bogus'" in bad["error"]
    assert bad["error"].endswith(f"(while training; full traceback in {bad['run_dir']}/error.log)")
    log = tmp_path / bad["run_dir"] / "error.log"
    assert log.parent.resolve() == (tmp_path / "runs" / spec.names[1]).resolve()   # inside the run folder
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "unknown activation 'bogus'" in text
    assert text.startswith(f"rdvae sweep: run {spec.names[1]} failed while training")


def test_interrupted_run_resumes_exactly(tmp_path, tiny_base, monkeypatch):
    base = {**tiny_base, "epochs": 2}
    spec = SweepSpec(base=base, points=[{"beta": 0.5}, {"beta": 2.0}])
    real_train = train

    def killed_in_second_epoch(config, out, **kwargs):
        def on_step(counters):
            if config.beta == 2.0 and counters["epoch"] == 1 and counters["batch"] == 3:
                raise KeyboardInterrupt  # the sweep process is killed mid-run
        return real_train(config, out, **{**kwargs, "on_step": on_step})

    monkeypatch.setattr("rdvae.train.train", killed_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(tmp_path, spec, workers=1, progress=False)
    rows = (tmp_path / "results.csv").read_text().splitlines()
    assert len(rows) == 2 and ",done," in rows[1]  # header + the finished run; no partial row
    run_dir = tmp_path / "runs" / spec.names[1]
    assert (run_dir / "trainer_state.safetensors").exists() and not (run_dir / "summary.json").exists()

    monkeypatch.setattr("rdvae.train.train", real_train)
    done_weights = (tmp_path / "runs" / spec.names[0] / "model.safetensors").stat().st_mtime_ns
    report = run_sweep(tmp_path, None, workers=1, progress=False)
    assert report.skipped == [f"runs/{spec.names[0]}"] and report.trained == [f"runs/{spec.names[1]}"]
    assert (tmp_path / "runs" / spec.names[0] / "model.safetensors").stat().st_mtime_ns == done_weights
    reference_config = TrainConfig.from_dict(nest_model_options({**base, "beta": 2.0}))
    reference = train(reference_config, tmp_path / "reference", progress=False)
    resumed = report.rows[1]
    for key in ("rate", "distortion", "elbo", "mutual_info", "active_units"):
        assert resumed[key] == pytest.approx(reference[key], rel=1e-12, abs=1e-12), key


def test_a_different_spec_is_refused(tmp_path, tiny_base):
    run_sweep(tmp_path, SweepSpec(base=tiny_base, points=[{"beta": 1.0}]), workers=1, progress=False)
    with pytest.raises(SweepError, match="different sweep"):
        run_sweep(tmp_path, SweepSpec(base=tiny_base, points=[{"beta": 2.0}]), progress=False)
    with pytest.raises(SweepError, match="no sweep.json"):
        run_sweep(tmp_path / "empty", None, progress=False)


@pytest.mark.slow  # spawning the workers (each imports torch) takes a while on a loaded 2-core box
def test_process_pool_gives_the_sequential_rows(tmp_path, tiny_base):
    spec = SweepSpec(base=tiny_base, points=sweep("beta", [0.5, 2.0]))
    sequential = run_sweep(tmp_path / "seq", spec, workers=1, progress=False)
    pooled = run_sweep(tmp_path / "pool", spec, workers=2, progress=False)
    assert sorted(pooled.trained) == sorted(sequential.trained)
    for a, b in zip(sequential.rows, pooled.rows, strict=True):
        for key, value in comparable(a).items():
            if isinstance(value, float):
                assert b[key] == pytest.approx(value, rel=1e-5), key
            else:
                assert b[key] == value, key


def test_rows_follow_a_reevaluated_summary(tmp_path, tiny_base, monkeypatch):
    spec = SweepSpec(base=tiny_base, points=[{"beta": 1.0}, {"beta": 2.0}])
    run_sweep(tmp_path, spec, workers=1, progress=False)
    from rdvae.rundir import RunDir

    RunDir(tmp_path / "runs" / spec.names[1]).update_summary(iw_nll=12.5, iw_samples=100)  # rdvae eval
    _forbid_training(monkeypatch)
    report = run_sweep(tmp_path, None, workers=1, progress=False)
    assert report.skipped == [f"runs/{spec.names[0]}"] and report.recorded == [f"runs/{spec.names[1]}"]
    assert report.rows[1]["iw_nll"] == 12.5 and report.rows[1]["iw_samples"] == 100
