"""The plateau criterion and the 'plateau' learning-rate schedule (TrainConfig.plateau_epochs)."""

import pytest
from tests.helpers import Interrupt, stop_at

from rdvae.rundir import RunDir
from rdvae.train import ConfigError, TrainConfig, train
from rdvae.train.schedules import plateau_factor, plateau_improvement, plateaued

SMALL = dict(dataset="digits", family="mlp", latent_dim=4, model={"hidden": [16]}, batch_size=256,
             eval_batch_size=500)


def test_plateau_improvement_is_the_best_before_minus_the_best_of_the_last_k():
    values = [10.0, 8.0, 7.0, 6.9, 7.2, 6.8]
    assert plateau_improvement(values, 3) == pytest.approx(7.0 - 6.8)
    assert plateau_improvement(values, 6) is None            # nothing before the last k
    assert plateau_improvement([5.0, 6.0, 7.0], 2) == pytest.approx(-1.0)   # got worse
    assert plateaued(values, 3, 0.5) and not plateaued(values, 3, 0.1)
    assert not plateaued(values[:3], 3, 100.0)


def test_plateau_factor_is_constant_then_linear_to_zero():
    assert plateau_factor(50, None, 10) == 1.0
    assert [plateau_factor(s, 20, 10) for s in (19, 20, 25, 30, 40)] == [1.0, 1.0, 0.5, 0.0, 0.0]


def _objective_curve(run) -> list[float]:
    return [m["objective"] for m in RunDir(run).read_metrics()]


def test_plateau_schedule_decays_after_the_plateau_then_stops(tmp_path):
    config = TrainConfig(**SMALL, epochs=40, lr=3e-3, lr_schedule="plateau", plateau_epochs=2,
                         plateau_nats=0.3,
                         decay_epochs=2)
    summary = train(config, tmp_path / "r", progress=False)
    metrics = RunDir(tmp_path / "r").read_metrics()
    values = _objective_curve(tmp_path / "r")
    # the decay began after the first epoch whose last 2 epochs improved by < 0.3 nats, and lasted 2 epochs
    first = next(e for e in range(3, len(values) + 1) if plateaued(values[:e], 2, 0.3))
    assert summary["epochs_trained"] == first + 2 < 40
    assert summary["converged"] is True and summary["stop_reason"] == "plateau"
    assert summary["plateau_gain"] == pytest.approx(plateau_improvement(values[:first], 2))
    assert all(m["lr"] == config.lr for m in metrics[:first])
    assert metrics[-1]["lr"] < 0.1 * config.lr
    # the monitored objective is the beta objective's own value at the validation means
    assert all(m["objective"] == pytest.approx(m["rate"] + m["distortion"]) for m in metrics)


def test_a_run_that_never_plateaus_decays_before_its_cap_and_says_so(tmp_path):
    config = TrainConfig(**SMALL, epochs=4, lr_schedule="plateau", plateau_epochs=2, plateau_nats=0.0,
                         decay_epochs=1)
    summary = train(config, tmp_path / "r", progress=False)
    assert summary["epochs_trained"] == 4 and summary["converged"] is False
    assert summary["stop_reason"] == "cap"


def test_early_stopping_without_decay_and_annealing_epochs_not_counted(tmp_path):
    config = TrainConfig(**SMALL, epochs=30, lr=3e-3, plateau_epochs=2, plateau_nats=0.3,
                         kl_anneal_steps=2 * 6)
    summary = train(config, tmp_path / "r", progress=False)
    metrics = RunDir(tmp_path / "r").read_metrics()
    counted = [m["objective"] for m in metrics if m["step"] > 12]     # 6 steps per epoch: 2 epochs annealing
    assert summary["converged"] is True and summary["epochs_trained"] == len(metrics) < 30
    assert plateaued(counted, 2, 0.3) and not plateaued(counted[:-1], 2, 0.3)


def test_an_interrupted_plateau_run_resumes_to_the_same_result(tmp_path):
    config = TrainConfig(**SMALL, epochs=40, lr=3e-3, lr_schedule="plateau", plateau_epochs=2,
                         plateau_nats=0.3,
                         decay_epochs=2, checkpoint_minutes=0.0)
    full = train(config, tmp_path / "full", progress=False)
    with pytest.raises(Interrupt):
        train(config, tmp_path / "cut", progress=False, on_step=stop_at(6 * (full["epochs_trained"] - 1) + 2))
    resumed = train(None, tmp_path / "cut", resume=True, progress=False)
    assert resumed["elbo"] == full["elbo"] and resumed["epochs_trained"] == full["epochs_trained"]
    assert _objective_curve(tmp_path / "cut") == _objective_curve(tmp_path / "full")


@pytest.mark.parametrize(("fields", "message"), [
    (dict(lr_schedule="plateau"), "plateau_epochs >= 1"),
    (dict(lr_schedule="plateau", plateau_epochs=2, decay_epochs=10), "decay_epochs \\(10\\) must be below"),
    (dict(decay_epochs=2), "only by lr_schedule 'plateau'"),
    (dict(plateau_nats=-1.0), "plateau_nats must be a number >= 0"),
    (dict(plateau_epochs=-1), "plateau_epochs must be an integer >= 0"),
])
def test_plateau_settings_are_validated(fields, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**{**SMALL, "epochs": 10, **fields}).validated()


def test_a_plateau_run_cannot_be_extended(tmp_path):
    config = TrainConfig(**SMALL, epochs=3, lr_schedule="plateau", plateau_epochs=1, plateau_nats=0.0,
                         decay_epochs=1)
    train(config, tmp_path / "r", progress=False)
    longer = TrainConfig(**{**SMALL, "epochs": 6, "lr_schedule": "plateau", "plateau_epochs": 1,
                            "plateau_nats": 0.0, "decay_epochs": 1})
    with pytest.raises(ConfigError, match="decay depends on the validation curve"):
        train(longer, tmp_path / "r", resume=True, progress=False)
