import json
import math

import pytest
import torch
from tests.helpers import Interrupt, NanAt, stop_at

from rdvae.rundir import RunDir, load_tensors
from rdvae.train import ConfigError, TrainConfig, TrainingDiverged, load_run, train

SMALL = dict(dataset="digits", binarize="dynamic", family="mlp", latent_dim=4,
             model={"hidden": [32]}, batch_size=256, eval_batch_size=500)


def _weights(path):
    tensors, _ = load_tensors(RunDir(path) / "model.safetensors")
    return tensors




@pytest.mark.parametrize("stop", [8, 12])  # mid-epoch (6 steps an epoch) and at an epoch's end
def test_resume_gives_the_result_of_an_uninterrupted_run(tmp_path, stop):
    config = TrainConfig(**SMALL, epochs=3, checkpoint_minutes=0.0)
    full = train(config, tmp_path / "full", progress=False)
    with pytest.raises(Interrupt):
        train(config, tmp_path / "cut", progress=False, on_step=stop_at(stop))
    resumed = train(None, tmp_path / "cut", resume=True, progress=False)
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["elbo"] == full["elbo"]
    metrics = RunDir(tmp_path / "cut").read_metrics()
    assert [m["epoch"] for m in metrics] == [1, 2, 3]
    full_metrics = RunDir(tmp_path / "full").read_metrics()
    for key in ("elbo", "train_loss", "train_rate", "step", "skipped"):
        assert [m[key] for m in metrics] == [m[key] for m in full_metrics], key


def test_finished_run_is_not_retrained_and_existing_run_is_protected(tmp_path):
    config = TrainConfig(**SMALL, epochs=1)
    first = train(config, tmp_path / "r", progress=False)
    assert train(config, tmp_path / "r", resume=True, progress=False) == first
    with pytest.raises(ConfigError, match="--resume"):
        train(config, tmp_path / "r", progress=False)
    with pytest.raises(ConfigError, match="different config"):
        train(TrainConfig(**{**SMALL, "epochs": 1, "lr": 3e-3}), tmp_path / "r", resume=True, progress=False)


@pytest.mark.parametrize("schedule", ["constant", "paper"])
def test_a_finished_run_extended_to_more_epochs_equals_the_longer_run(tmp_path, schedule):
    """Two epochs at a constant rate, then resumed with 4 epochs: the same weights as a
    4-epoch run from scratch, with a constant rate or with the 'paper' schedule (constant for
    its first half, the two epochs already taken)."""
    short = train(TrainConfig(**SMALL, epochs=2), tmp_path / "ext", progress=False)
    longer = TrainConfig(**SMALL, epochs=4, lr_schedule=schedule)
    extended = train(longer, tmp_path / "ext", resume=True, progress=False)
    full = train(longer, tmp_path / "full", progress=False)
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "ext")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert extended["elbo"] == full["elbo"] != short["elbo"]
    assert extended["status"] == "done" and extended["epochs"] == 4
    assert [m["epoch"] for m in RunDir(tmp_path / "ext").read_metrics()] == [1, 2, 3, 4]
    assert RunDir(tmp_path / "ext").read_config()["epochs"] == 4


def test_extending_is_refused_where_the_learning_rates_taken_would_change(tmp_path):
    train(TrainConfig(**SMALL, epochs=2, lr_schedule="paper"), tmp_path / "r", progress=False)
    for epochs, schedule in ((4, "paper"), (4, "cosine"), (1, "paper")):
        match = "another learning rate" if epochs > 2 else "different config"
        with pytest.raises(ConfigError, match=match):
            train(TrainConfig(**SMALL, epochs=epochs, lr_schedule=schedule), tmp_path / "r", resume=True,
                  progress=False)
    assert RunDir(tmp_path / "r").read_config()["epochs"] == 2   # nothing was changed
    assert RunDir(tmp_path / "r").read_summary()["status"] == "done"


def test_nan_guard_skips_and_counts_transient_failures(tmp_path):
    summary = train(TrainConfig(**SMALL, epochs=2), tmp_path / "r", progress=False,
                    objective=NanAt(lambda s: s in (2, 5, 7)))
    assert summary["skipped_updates"] == 3 and math.isfinite(summary["elbo"])
    assert RunDir(tmp_path / "r").read_metrics()[-1]["skipped"] == 3


def test_nan_guard_stops_on_persistent_failures_and_keeps_last_good_checkpoint(tmp_path):
    config = TrainConfig(**SMALL, epochs=3, max_consecutive_skips=4)
    with pytest.raises(TrainingDiverged, match="last good checkpoint"):
        train(config, tmp_path / "r", progress=False, objective=NanAt(lambda s: s >= 8))
    run = RunDir(tmp_path / "r")
    _, meta = load_tensors(run / "trainer_state.safetensors")
    # failures from step 8 on: the fifth consecutive skip (step 12, epoch 3) stops the run;
    # the epoch-2 checkpoint holds the weights of the last good update (skips change nothing)
    assert meta["counters"]["epoch"] == 2 and meta["counters"]["consecutive_skips"] == 4
    assert all(torch.isfinite(t).all() for t in _weights(run.path).values())
    trained = load_run(run.path)
    assert trained.model.latent_dim == 4


def test_target_rate_objective_drives_rate_to_sigma(tmp_path):
    # this model at beta = 1 settles near R = 3 nats; |sigma - R| pulls it up to sigma = 8
    config = TrainConfig(dataset="digits", binarize="static", latent_dim=8, model={"hidden": [64]},
                         target_rate=8.0, epochs=15, batch_size=64, lr=2e-3, lr_schedule="paper",
                         final_split="train")
    summary = train(config, tmp_path / "r", progress=False)
    assert abs(summary["rate"] - 8.0) < 0.3, summary["rate"]
    assert summary["beta"] is None and summary["target_rate"] == 8.0


def test_paper_learning_rate_schedule_reaches_zero(tmp_path):
    train(TrainConfig(**SMALL, epochs=2, lr_schedule="paper", normalized_gradients=True),
          tmp_path / "r", progress=False)
    metrics = RunDir(tmp_path / "r").read_metrics()
    assert metrics[0]["lr"] == pytest.approx(1e-3) and metrics[-1]["lr"] < 1e-3 / 5


def test_run_directory_contract(tmp_path):
    train(TrainConfig(**SMALL, epochs=1, iw_samples=10), tmp_path / "r", progress=False)
    run = RunDir(tmp_path / "r")
    summary = json.loads((run / "summary.json").read_text())
    for key in ("rate", "distortion", "elbo", "iw_nll", "iw_samples", "mutual_info", "active_units",
                "beta", "family", "dataset", "split", "epochs", "seed", "train_seconds", "params"):
        assert key in summary, key
    assert summary["iw_nll"] <= -summary["elbo"] + 0.5
    assert TrainConfig.from_dict(json.loads((run / "config.json").read_text())).epochs == 1
    # checkpoints are safetensors, readable without unpickling
    assert (run / "trainer_state.safetensors").read_bytes()[8:9] == b"{"


def test_bf16_training_and_iw_evaluation_run_and_stay_close_to_fp32(tmp_path):
    results = {p: train(TrainConfig(**SMALL, epochs=2, precision=p, iw_samples=20), tmp_path / p,
                        progress=False) for p in ("fp32", "bf16")}
    assert all(math.isfinite(r["elbo"]) and math.isfinite(r["iw_nll"]) for r in results.values())
    assert abs(results["bf16"]["elbo"] - results["fp32"]["elbo"]) < 2.0


def test_weights_that_do_not_fit_the_config_fail_with_a_hint(tmp_path):
    """A run whose saved weights do not fit the model its config builds (e.g. saved under other
    defaults) is refused with the file and the fix named, never loaded partly."""
    from rdvae.engine.checkpoint import load_weights, save_weights
    from rdvae.presets import build_model
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    save_weights(run, build_model("mr-mlp", (1, 6, 6), latent_dim=3, hidden=[8], latent_gate=False))
    with pytest.raises(ConfigError, match=r"(?s)do not fit the model .* config\.json.*Missing key"):
        load_weights(run, build_model("mr-mlp", (1, 6, 6), latent_dim=3, hidden=[8]))


def test_a_checkpoint_in_the_layout_before_the_engine_resumes_to_the_same_weights(tmp_path):
    """Checkpoints written by the VAE trainer before rdvae.engine kept the epoch's sums as a list
    [loss, R, D] with the objective's terms apart, and the plateau state among the counters; a run
    interrupted then resumes as it always did."""
    from rdvae.rundir import TRAINER_STATE, save_tensors

    config = TrainConfig(**SMALL, epochs=2, checkpoint_minutes=0.0, plateau_epochs=1, plateau_nats=0.0)
    train(config, tmp_path / "full", progress=False)
    with pytest.raises(Interrupt):
        train(config, tmp_path / "cut", progress=False, on_step=stop_at(8))
    state = RunDir(tmp_path / "cut") / TRAINER_STATE
    tensors, meta = load_tensors(state)
    counters = meta["counters"]
    sums = counters["epoch_sums"]
    counters["epoch_sums"] = [sums.pop("loss"), sums.pop("rate"), sums.pop("distortion")]
    counters["epoch_terms"] = sums
    counters.update(meta["callbacks"]["plateau"])
    legacy = {k: v for k, v in meta.items() if k not in ("callbacks", "plan", "stop_reason")}
    save_tensors(state, tensors, legacy)
    resumed = train(None, tmp_path / "cut", resume=True, progress=False)
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["elbo"] == RunDir(tmp_path / "full").read_summary()["elbo"]
