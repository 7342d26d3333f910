"""Stages 1 and 2 on fresh draws of the ground truth: the batches are draws of g0 with noise sigma (no
real image is read), stage 1 leaves g0 as it is, a kill mid-epoch resumes to the same weights, and the
convergence criterion stops a stage at a plateau of its held-out figure."""

import math
import sys

import pytest
import torch
from tests.helpers import Interrupt, kill_at

from rdvae.errors import ConfigError
from rdvae.rundir import WEIGHTS, RunDir, load_tensors
from rdvae.studies.gan_decoder.dcgan import dcgan
from rdvae.studies.gan_decoder.ground_truth import GroundTruth, stage_model
from rdvae.studies.gan_decoder.stages import (
    Converged,
    StageConfig,
    StagePlan,
    conditional_log_likelihood,
    held_out_figures,
    load_stage,
    train_stage,
)

SIGMA = 0.025


def tiny_truth(sigma: float = SIGMA) -> GroundTruth:
    torch.manual_seed(0)
    return GroundTruth(dcgan((1, 16, 16), 8, ngf=4, ndf=4).generator, sigma)


def tiny(stage: str = "stage1-encoder", **changes) -> StageConfig:
    settings = dict(stage=stage, event_shape=[1, 16, 16], latent_dim=8, ngf=4, ndf=4, sigma=SIGMA,
                    max_steps=12, epoch_steps=4, batch_size=32, lr=2e-3, validation_samples=64,
                    plateau_epochs=0, device="cpu")
    return StageConfig(**{**settings, **changes}).validated()


def weights(path):
    return load_tensors(RunDir(path) / WEIGHTS)[0]


def trap_dataset_loaders(monkeypatch):
    """Make every reference to rdvae's dataset loader raise: a stage that reads real images fails."""
    from rdvae.data import registry

    original = registry.load_dataset

    def refuse(*args, **kwargs):
        raise AssertionError(f"a stage read a dataset: load_dataset{args}")

    holders = [m for m in list(sys.modules.values()) if getattr(m, "load_dataset", None) is original]
    assert registry in holders
    for module in holders:
        monkeypatch.setattr(module, "load_dataset", refuse)


def test_both_stages_train_on_fresh_draws_of_the_ground_truth(tmp_path, monkeypatch):
    truth = tiny_truth()
    generator = {k: v.clone() for k, v in truth.generator.state_dict().items()}
    batches = {"stage1-encoder": [], "stage2-joint": []}
    step = StagePlan.training_step

    def recording(self, draws, step_index, index):
        batches[self.config.stage].append(draws)
        return step(self, draws, step_index, index)

    monkeypatch.setattr(StagePlan, "training_step", recording)
    trap_dataset_loaders(monkeypatch)
    one = train_stage(tiny(), tmp_path / "one", truth, stage_model(truth, 4, 4), progress=False)
    start, _ = load_stage(tmp_path / "one")
    two = train_stage(tiny("stage2-joint"), tmp_path / "two", truth, start, progress=False)
    assert one["steps_trained"] == two["steps_trained"] == 12
    for stage, drawn in batches.items():
        assert len(drawn) == 12, stage
        for draws in drawn:   # x = g0(z) + sigma eps with g0 the ground truth's generator, z ~ N(0, I)
            with torch.no_grad():
                assert torch.equal(draws.means, truth.generator(draws.z))
            eps = (draws.x - draws.means) / SIGMA
            assert abs(eps.mean().item()) < 0.05 and abs(eps.std().item() - 1) < 0.05, stage
            assert draws.z.shape == (32, 8) and abs(draws.z.std().item() - 1) < 0.15
        assert len({d.z[0, 0].item() for d in drawn}) == 12   # a fresh batch every step
    # stage 1 leaves the decoder g0 as it is and improves the held-out conditional likelihood; stage 2
    # moves the decoder; the ground truth itself never moves
    model_one, _ = load_stage(tmp_path / "one")
    model_two, _ = load_stage(tmp_path / "two")
    assert all(torch.equal(model_one.decoder.trunk.state_dict()[k], v) for k, v in generator.items())
    assert not all(torch.equal(model_two.decoder.trunk.state_dict()[k], v) for k, v in generator.items())
    assert all(torch.equal(truth.generator.state_dict()[k], v) for k, v in generator.items())
    nll = [m["conditional_nll"] for m in RunDir(tmp_path / "one").read_metrics()]
    assert nll[-1] < nll[0]
    assert one["elbo"] == pytest.approx(-(one["rate"] + one["distortion"]), rel=1e-6)


@pytest.mark.parametrize("stage", ["stage1-encoder", "stage2-joint"])
def test_a_stage_killed_mid_epoch_resumes_to_the_same_weights(tmp_path, monkeypatch, stage):
    truth = tiny_truth()

    def start():
        return stage_model(truth, 4, 4, seed=3)

    config = tiny(stage, checkpoint_minutes=0.0)
    full = train_stage(config, tmp_path / "full", truth, start(), progress=False)
    kill_at(monkeypatch, 6)   # mid-epoch 2 (4 steps an epoch)
    with pytest.raises(Interrupt):
        train_stage(config, tmp_path / "cut", truth, start(), progress=False)
    assert [m["epoch"] for m in RunDir(tmp_path / "cut").read_metrics()] == [1]
    resumed = train_stage(config, tmp_path / "cut", truth, start(), progress=False)
    a, b = weights(tmp_path / "full"), weights(tmp_path / "cut")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["elbo"] == full["elbo"] and resumed["conditional_nll"] == full["conditional_nll"]
    def untimed(path):
        return [{k: v for k, v in m.items() if k != "train_seconds"} for m in RunDir(path).read_metrics()]

    assert untimed(tmp_path / "cut") == untimed(tmp_path / "full")
    # a finished stage is returned as it is; another config is refused
    assert train_stage(config, tmp_path / "full", truth, start(), progress=False) == full
    with pytest.raises(ConfigError, match="cannot resume .* with a different config"):
        train_stage(tiny(stage, lr=1e-3), tmp_path / "full", truth, start(), progress=False)


class FakeLoop:
    def __init__(self):
        self.stop_reason = None


def test_the_criterion_stops_at_a_plateau_of_the_held_out_figure():
    converged, loop = Converged("objective", epochs=2, nats=0.5), FakeLoop()
    for value in (10.0, 8.0, 7.0, 6.9):   # the best of the last 2 (6.9) vs before (8.0): 1.1 >= 0.5
        converged.on_validation(loop, {"objective": value})
    assert loop.stop_reason is None and converged.gain == pytest.approx(1.1)
    record = {"objective": 6.8}           # 6.8 vs 7.0: 0.2 < 0.5
    converged.on_validation(loop, record)
    assert loop.stop_reason == "plateau" and converged.converged
    assert record["plateau_gain"] == pytest.approx(0.2)
    summary = {}
    converged.on_fit_end(loop, summary)
    assert summary["converged"] and summary["stop_reason"] == "plateau"
    again = Converged("objective", epochs=2, nats=0.5)
    again.load_state_dict(converged.state_dict())
    assert again.values == converged.values and again.converged
    never = Converged("objective", epochs=0, nats=1e9)
    for value in (1.0, 1.0, 1.0):
        never.on_validation(loop := FakeLoop(), {"objective": value})
    assert loop.stop_reason is None and not never.converged


def test_a_stage_stops_by_its_criterion_and_says_so(tmp_path):
    truth = tiny_truth()
    summary = train_stage(tiny(plateau_epochs=1, plateau_nats=1e6), tmp_path / "s", truth,
                          stage_model(truth, 4, 4), progress=False)
    assert summary["converged"] and summary["stop_reason"] == "plateau"
    assert summary["steps_trained"] == 8 and summary["criterion"] == "objective"
    metrics = RunDir(tmp_path / "s").read_metrics()
    assert [m["objective"] for m in metrics] == [m["conditional_nll"] for m in metrics]
    capped = train_stage(tiny("stage2-joint", plateau_epochs=0), tmp_path / "c", truth,
                         stage_model(truth, 4, 4), progress=False)
    assert not capped["converged"] and capped["stop_reason"] == "cap" and capped["steps_trained"] == 12
    assert all(m["objective"] == -m["elbo"] for m in RunDir(tmp_path / "c").read_metrics())


def test_the_held_out_figures_are_the_encoders_log_density_and_the_elbo():
    truth = tiny_truth()
    model = stage_model(truth, 4, 4).eval()
    draws = truth.draw(50, seed=4)
    with torch.no_grad():
        q = model.encoder(draws.x)
        by_hand = torch.distributions.Normal(q.mean, q.stddev).log_prob(draws.z).sum(1)
    assert torch.allclose(conditional_log_likelihood(model, draws, batch_size=7), by_hand, atol=1e-5)
    figures = held_out_figures(model, draws, seed=0)
    assert figures["conditional_nll"] == pytest.approx(-by_hand.mean().item(), rel=1e-5)
    assert figures["conditional_nll_se"] == pytest.approx(by_hand.std().item() / math.sqrt(50), rel=1e-4)
    assert figures["neg_elbo"] == pytest.approx(figures["rate"] + figures["distortion"], rel=1e-5)
    assert figures["held_out"] == 50
    # the same seed, the same held-out draws; the caller's random stream is left where it was
    state = torch.get_rng_state()
    assert torch.equal(truth.draw(50, seed=4).x, draws.x)
    assert torch.equal(torch.get_rng_state(), state)


def test_bad_stage_settings_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"max_steps must be a multiple of epoch_steps \(4\), got 10"):
        tiny(max_steps=10)
    with pytest.raises(ConfigError, match=r"event_shape must be a list \[C, H, W\] of integers >= 1"):
        tiny(event_shape=[16, 16])
    with pytest.raises(ConfigError, match="stage must be one of stage1-encoder, stage2-joint, got 'stage3'"):
        tiny("stage3")
    with pytest.raises(ConfigError, match="plateau_nats must be a number >= 0, got -1"):
        tiny(plateau_nats=-1)
    with pytest.raises(ConfigError, match="unknown stage config field"):
        StageConfig.from_dict({"stages": "stage1-encoder"})
    truth = tiny_truth()
    with pytest.raises(ConfigError, match=r"the ground truth draws images \[1, 16, 16\] from 8 latents"):
        train_stage(tiny(latent_dim=9), tmp_path / "x", truth, stage_model(truth, 4, 4), progress=False)


def test_a_stage_run_is_not_mistaken_for_a_vae_run(tmp_path):
    from rdvae.train import load_run

    truth = tiny_truth()
    train_stage(tiny(max_steps=4), tmp_path / "s", truth, stage_model(truth, 4, 4), progress=False)
    with pytest.raises(ConfigError, match="this is a 'gan-decoder-stage' run, not a VAE run"):
        load_run(tmp_path / "s")
