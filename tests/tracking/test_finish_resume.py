"""The trackers' finish is a step of its own: recorded in trackers.json ("pending" before summary.json
says "done", then "done" or "failed" per tracker), and `--resume` of a done run whose finish a kill or a
failure left undone starts those trackers at the last step and finishes them, logging nothing twice."""

import json
import threading

import pytest
from tests.helpers import need

from rdvae.registry import register_logger
from rdvae.rundir import RunDir
from rdvae.tracking.dispatch import TrackerWarning, Tracking
from rdvae.tracking.scalars import final_metrics
from rdvae.train import TrainConfig, train

CALLS: list = []
FAIL: list = []        # exceptions the next finish calls raise, in order
RELEASE: list = []     # threading.Event the next finish waits for


class FinishRecorder:
    every_step = True

    def start(self, config, step=0):
        CALLS.append(("start", step))

    def log(self, step, scalars):
        CALLS.append(("log", step))

    def log_figure(self, step, name, image):
        CALLS.append(("log_figure", step))

    def finish(self, summary):
        CALLS.append(("finish", summary))
        if RELEASE:
            RELEASE.pop(0).wait(10)
        if FAIL:
            raise FAIL.pop(0)


@register_logger("test-finish", replace=True)
def finish_recorder(run_dir):
    return FinishRecorder()


@pytest.fixture(autouse=True)
def _clear():
    CALLS.clear(), FAIL.clear(), RELEASE.clear()


def _record(run_dir) -> dict:
    return json.loads((run_dir / "trackers.json").read_text())["finish"]


def _killed_in_finish(monkeypatch, before=None):
    """The process dies after summary.json says "done", while the trackers finish: they had taken every
    call before (closed), `before(trackers, summary)` runs, and the trackers' finish never returns."""
    def killed(self, summary):
        trackers = list(self.trackers)
        self.close()
        if before is not None:
            before(trackers, summary)
        raise KeyboardInterrupt

    monkeypatch.setattr(Tracking, "finish", killed)


def test_a_kill_during_the_finish_is_finished_by_resume_once(tmp_path, tiny, monkeypatch):
    out = tmp_path / "r"
    _killed_in_finish(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**tiny, log=["test-finish"]), out, progress=False)
    summary = RunDir(out).read_summary()
    assert summary["status"] == "done"
    assert _record(out) == {"step": 12, "trackers": {"test-finish": "pending"}}   # written before "done"
    assert "finish" not in [c[0] for c in CALLS]
    monkeypatch.undo()
    CALLS.clear()
    assert train(None, out, resume=True, progress=False) == summary
    # started at the last step, nothing logged again, finished with summary.json
    assert [c[0] for c in CALLS] == ["start", "finish"] and CALLS[0][1] == 12
    assert CALLS[1][1] == {**summary, "step": 12}
    assert _record(out) == {"step": 12, "trackers": {"test-finish": "done"}}
    CALLS.clear()
    assert train(None, out, resume=True, progress=False) == summary
    assert CALLS == []   # finished: a second resume calls nothing


def test_a_failed_finish_is_recorded_warned_and_done_again_by_resume(tmp_path, tiny):
    out = tmp_path / "r"
    FAIL.append(ConnectionError("tracker server down"))
    with pytest.warns(TrackerWarning, match=r"'test-finish' failed.*finish: ConnectionError.*recorded as "
                                            r"not done.*rdvae train --resume --out"):
        summary = train(TrainConfig(**tiny, log=["test-finish"]), out, progress=False)
    assert summary["status"] == "done"
    assert _record(out)["trackers"] == {"test-finish": "failed"}
    CALLS.clear()
    train(None, out, resume=True, progress=False)
    assert [c[0] for c in CALLS] == ["start", "finish"]
    assert _record(out)["trackers"] == {"test-finish": "done"}


def test_a_finish_past_its_time_is_failed_until_it_returns(tmp_path, tiny, monkeypatch):
    out = tmp_path / "r"
    release = threading.Event()
    RELEASE.append(release)
    monkeypatch.setattr(Tracking.close, "__defaults__", (0.2,))   # the wait for the trackers' finish
    with pytest.warns(TrackerWarning, match="had not finished 0.2 s after training ended"):
        train(TrainConfig(**tiny, log=["test-finish"]), out, progress=False)
    assert _record(out)["trackers"] == {"test-finish": "failed"}
    release.set()   # the tracker's finish returns late: then it is done
    for _ in range(200):
        if _record(out)["trackers"]["test-finish"] == "done":
            break
        threading.Event().wait(0.05)
    assert _record(out)["trackers"] == {"test-finish": "done"}


def test_a_run_without_trackers_writes_no_record(tmp_path, tiny):
    out = tmp_path / "r"
    train(TrainConfig(**tiny), out, progress=False)
    train(None, out, resume=True, progress=False)
    assert not (out / "trackers.json").exists()


def test_resume_finishes_only_the_trackers_not_done(tmp_path, tiny, monkeypatch):
    register_logger("test-finish-2", finish_recorder, replace=True)
    out = tmp_path / "r"
    train(TrainConfig(**tiny, log=["test-finish", "test-finish-2"]), out, progress=False)
    record = _record(out)
    assert record["trackers"] == {"test-finish": "done", "test-finish-2": "done"}
    ids = json.loads((out / "trackers.json").read_text())
    (out / "trackers.json").write_text(json.dumps(
        {**ids, "finish": {**record, "trackers": {"test-finish": "done", "test-finish-2": "pending"}}}))
    CALLS.clear()
    train(None, out, resume=True, progress=False)
    assert [c[0] for c in CALLS] == ["start", "finish"]   # the one tracker not done
    assert _record(out)["trackers"] == {"test-finish": "done", "test-finish-2": "done"}


def _events(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    events.Reload()
    return events


@pytest.mark.parametrize("written", [False, True])
def test_tensorboard_finished_again_neither_purges_nor_repeats(tmp_path, tiny, monkeypatch, written):
    need("tensorboard", "tensorboard")
    out = tmp_path / "r"

    def flush_finish(trackers, summary):   # written: the finish had reached the files when the kill came
        for tracker in trackers:
            if written:
                tracker.logger.finish({**summary, "step": 12})
            else:
                tracker.logger.writer.flush()

    _killed_in_finish(monkeypatch, flush_finish)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**tiny, log=["tensorboard"]), out, progress=False)
    monkeypatch.undo()
    summary = train(None, out, resume=True, progress=False)
    assert _record(out)["trackers"] == {"tensorboard": "done"}
    events = _events(out / "tensorboard")
    assert [e.step for e in events.Scalars("train/loss")] == [2, 4, 6, 8, 10, 12]   # none purged or repeated
    assert [e.step for e in events.Scalars("valid/rate")] == [6, 12]
    assert [(e.step, e.value) for e in events.Scalars("final/elbo")] == [(12, pytest.approx(summary["elbo"]))]
    assert events.PluginTagToContent("hparams")


def test_mlflow_killed_during_its_finish_is_finished_by_resume(tmp_path, tiny, monkeypatch):
    mlflow = need("mlflow", "mlflow")
    out = tmp_path / "r"

    def uploading(trackers, summary):   # killed while uploading: final metrics and config.json logged
        (tracker,) = trackers
        logger = tracker.logger
        logger._metrics(12, final_metrics(summary))
        logger.client.log_artifact(logger.run_id, str(out / "config.json"))

    _killed_in_finish(monkeypatch, uploading)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**tiny, log=["mlflow"]), out, progress=False)
    client = mlflow.MlflowClient(tracking_uri=(out / "mlruns").as_uri())
    run_id = json.loads((out / "trackers.json").read_text())["mlflow"]
    assert client.get_run(run_id).info.status == "RUNNING"
    assert _record(out)["trackers"] == {"mlflow": "pending"}
    history = [(m.step, m.value) for m in client.get_metric_history(run_id, "valid/rate")]
    monkeypatch.undo()

    summary = train(None, out, resume=True, progress=False)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and _record(out)["trackers"] == {"mlflow": "done"}
    assert len(client.search_runs([run.info.experiment_id])) == 1   # the same MLflow run, no other
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "valid/rate")] == history
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "final/elbo")] == [
        (12, pytest.approx(summary["elbo"]))]   # logged once
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"model.safetensors", "config.json", "summary.json", "metrics.jsonl"} <= artifacts
    train(None, out, resume=True, progress=False)
    assert client.get_run(run_id).info.status == "FINISHED"


def test_mlflow_whose_finish_failed_is_finished_by_resume(tmp_path, tiny, monkeypatch):
    mlflow = need("mlflow", "mlflow")
    out = tmp_path / "r"

    def down(self, run_id, status=None, end_time=None):
        raise ConnectionError("tracking server down")

    monkeypatch.setattr(mlflow.MlflowClient, "set_terminated", down)
    with pytest.warns(TrackerWarning, match="'mlflow' failed.*tracking server down"):
        train(TrainConfig(**tiny, log=["mlflow"]), out, progress=False)
    monkeypatch.undo()
    client = mlflow.MlflowClient(tracking_uri=(out / "mlruns").as_uri())
    run_id = json.loads((out / "trackers.json").read_text())["mlflow"]
    assert client.get_run(run_id).info.status == "RUNNING"
    assert _record(out)["trackers"] == {"mlflow": "failed"}
    train(None, out, resume=True, progress=False)
    assert client.get_run(run_id).info.status == "FINISHED"
    assert _record(out)["trackers"] == {"mlflow": "done"}
    assert len(client.get_metric_history(run_id, "final/elbo")) == 1


def test_a_continued_sweep_finishes_the_trackers_of_its_done_runs(tmp_path, tiny):
    """A sweep's done run whose trackers' finish failed is finished when the sweep is run again."""
    from rdvae.sweep import SweepSpec, run_sweep

    base = {k: v for k, v in tiny.items() if k != "model"}
    spec = SweepSpec(base={**base, "model.hidden": [16], "log": ["test-finish"]}, points=[{"beta": 1.0}])
    FAIL.append(ConnectionError("tracker server down"))
    with pytest.warns(TrackerWarning):
        run_sweep(tmp_path / "s", spec, workers=1, progress=False)
    (run,) = (tmp_path / "s" / "runs").iterdir()
    assert _record(run)["trackers"] == {"test-finish": "failed"}
    CALLS.clear()
    report = run_sweep(tmp_path / "s", None, workers=1, progress=False)
    assert [c[0] for c in CALLS] == ["start", "finish"] and report.trained == []
    assert _record(run)["trackers"] == {"test-finish": "done"}
