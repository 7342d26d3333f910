"""The logger protocol: what a logger receives, that the default is today's metrics.jsonl alone, that a
failing tracker leaves the run's result untouched, and the errors of a bad --log."""

import sys

import numpy as np
import pytest
from tests.helpers import Interrupt, stop_at

from rdvae.errors import ConfigError
from rdvae.registry import LOGGERS, register_logger
from rdvae.rundir import RunDir
from rdvae.sweep.results import TIMING_KEYS
from rdvae.train import TrainConfig, train

CALLS: list = []


class Recorder:
    every_step = True

    def __init__(self, fail_at: str | None = None):
        self.fail_at = fail_at

    def _call(self, name, *args):
        CALLS.append((name, *args))
        if name == self.fail_at:
            raise ConnectionError("tracker server down")

    def start(self, config, step=0):
        self._call("start", config, step)

    def log(self, step, scalars):
        self._call("log", step, dict(scalars))

    def log_figure(self, step, name, image):
        self._call("log_figure", step, name, image)

    def finish(self, summary):
        self._call("finish", summary)


@register_logger("test-recorder", replace=True)
def recorder(run_dir, fail_at: str = ""):
    return Recorder(fail_at or None)


@pytest.fixture(autouse=True)
def _clear():
    CALLS.clear()


def _without_timing(summary):
    return {k: v for k, v in summary.items() if k not in TIMING_KEYS}


def test_the_default_writes_what_it_always_wrote(tmp_path, tiny):
    train(TrainConfig(**tiny), tmp_path / "r", progress=False)
    names = sorted(p.name for p in (tmp_path / "r").iterdir())
    assert names == [".rdvae.lock", "config.json", "metrics.jsonl", "model.safetensors", "summary.json",
                     "trainer_state.safetensors"]   # and the lock file of its one writer
    keys = set(RunDir(tmp_path / "r").read_metrics()[0])
    assert not keys & {"mutual_info", "active_units", "effective_beta"}   # only computed for trackers


def test_a_logger_receives_config_epochs_steps_figures_and_summary(tmp_path, tiny):
    summary = train(TrainConfig(**tiny, log=["test-recorder"], log_tags={"beta": 1.0}), tmp_path / "r",
                    progress=False)
    kinds = [c[0] for c in CALLS]
    assert kinds[0] == "start" and kinds[-1] == "finish"
    start, finish = CALLS[0], CALLS[-1]
    assert start[1]["log_tags"] == {"beta": 1.0} and start[2] == 0
    assert finish[1]["elbo"] == summary["elbo"] and finish[1]["status"] == "done"
    logs = [c for c in CALLS if c[0] == "log"]
    steps = [c[1] for c in logs if "train/loss" in c[2]]
    assert steps == [2, 4, 6, 8, 10, 12]   # every log_every_steps (6 steps an epoch)
    epochs = [c[2] for c in logs if "epoch" in c[2]]
    assert epochs == RunDir(tmp_path / "r").read_metrics()   # the metrics.jsonl records, as written
    assert all(isinstance(e["mutual_info"], float) and e["active_units"] in (0, 1, 2) for e in epochs)
    figures = [c for c in CALLS if c[0] == "log_figure"]
    assert sorted({c[2] for c in figures}) == ["reconstructions", "samples"]
    assert [c[1] for c in figures if c[2] == "samples"] == [6, 12]   # log_figures_every=1
    image = figures[0][3]
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and image.std() > 0


def test_a_tracker_that_raises_warns_once_and_changes_nothing(tmp_path, tiny):
    plain = train(TrainConfig(**tiny), tmp_path / "plain", progress=False)
    # every figure the trackers ask for is computed with its own seeded draws: same result bit for bit
    quiet = train(TrainConfig(**tiny, log=["test-recorder"]), tmp_path / "quiet", progress=False)
    with pytest.warns(RuntimeWarning, match="tracker 'test-recorder' failed.*tracker server down") as caught:
        failed = train(TrainConfig(**tiny, log=["test-recorder"], log_options={"fail_at": "log"}),
                       tmp_path / "failed", progress=False)
    assert len([w for w in caught if "test-recorder" in str(w.message)]) == 1
    assert _without_timing(failed) == _without_timing(plain) == _without_timing(quiet)
    assert [c[0] for c in CALLS].count("finish") == 1   # the quiet run's; the failed one was left out
    shared = ("rate", "distortion", "elbo", "train_loss", "step", "lr")
    ours = [{k: m[k] for k in shared} for m in RunDir(tmp_path / "failed").read_metrics()]
    assert ours == [{k: m[k] for k in shared} for m in RunDir(tmp_path / "plain").read_metrics()]


def test_an_interrupted_run_closes_its_trackers_and_resumes_with_them(tmp_path, tiny):
    config = TrainConfig(**{**tiny, "epochs": 3}, log=["test-recorder"], checkpoint_minutes=0.0)
    with pytest.raises(Interrupt):
        train(config, tmp_path / "r", progress=False, on_step=stop_at(8))
    assert "finish" not in [c[0] for c in CALLS]
    CALLS.clear()
    train(None, tmp_path / "r", resume=True, progress=False)
    assert CALLS[0][0] == "start" and CALLS[0][2] == 7   # resumed at the last (per-step) checkpoint
    assert [c[2]["epoch"] for c in CALLS if c[0] == "log" and "epoch" in c[2]] == [2, 3]


def test_resume_may_change_the_trackers_but_nothing_else(tmp_path, tiny):
    train(TrainConfig(**{**tiny, "epochs": 1}), tmp_path / "r", progress=False)
    resumed = TrainConfig(**{**tiny, "epochs": 2}, log=["test-recorder"])
    train(resumed, tmp_path / "r", resume=True, progress=False)
    assert RunDir(tmp_path / "r").read_config()["log"] == ["test-recorder"]
    assert [c[0] for c in CALLS][-1] == "finish"


@pytest.mark.parametrize("settings, message", [
    ({"log": ["tensorbored"]}, r"unknown logger 'tensorbored' \(did you mean 'tensorboard'\?\).*registered"),
    ({"log": "tensorboard"}, "log must be a list of tracker names, got 'tensorboard'"),
    ({"log": ["tensorboard", "tb"]}, "log names a tracker twice"),
    ({"log": ["mlflow"], "log_options": {"mlflow_url": "x"}},
     r"unknown log option for log \['mlflow'\]: 'mlflow_url' \(did you mean 'mlflow_uri'\?\)"),
    ({"log_options": {"mlflow_uri": "x"}}, r"log names no tracker"),
    ({"log": ["mlflow"], "log_options": {"mlflow_experiment": 3}},
     "logger 'mlflow': option mlflow_experiment=3 must be a string"),
    ({"log_every_steps": 0}, "log_every_steps must be an integer >= 1, got 0"),
    ({"log_figures_every": -1}, "log_figures_every must be an integer >= 0, got -1"),
    ({"log_tags": ["beta"]}, "log_tags must be a mapping"),
])
def test_bad_tracking_settings_are_refused_naming_the_field(settings, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**settings).validated()


def test_a_missing_extra_names_the_pip_command_before_training(tmp_path, tiny, monkeypatch):
    for module in ("mlflow", "wandb", "torch.utils.tensorboard"):
        monkeypatch.setitem(sys.modules, module, None)   # import fails as if not installed
    for name, extra in (("mlflow", "mlflow"), ("wandb", "wandb"), ("tensorboard", "tensorboard")):
        with pytest.raises(ConfigError, match=rf"pip install 'rdvae\[{extra}\]'"):
            train(TrainConfig(**tiny, log=[name]), tmp_path / name, progress=False)
        assert not (tmp_path / name / "metrics.jsonl").exists()


def test_the_built_in_trackers_are_registered():
    assert {"tensorboard", "mlflow", "wandb"} <= set(LOGGERS.names())
