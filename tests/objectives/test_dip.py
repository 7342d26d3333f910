"""DIP-VAE: the covariances and the penalty against numpy and hand-computed batches, the objective
through the model contract, the registry and the config, and the encoders it refuses."""

import math

import numpy as np
import pytest
import torch
from tests.helpers import LinearGaussianEncoder, ppca_vae
from torch import nn

from rdvae.components import GaussianDecoder, IAFEncoder, StandardNormal
from rdvae.errors import ConfigError
from rdvae.model import VAE
from rdvae.objectives import DIPObjective, ObjectiveError
from rdvae.objectives.dip import dip_covariance, dip_penalty_terms
from rdvae.registry import OBJECTIVES
from rdvae.rundir import RunDir
from rdvae.train import TrainConfig, train

SMALL = dict(dataset="digits", binarize="dynamic", family="mlp", latent_dim=4,
             model={"hidden": [32]}, batch_size=256, eval_batch_size=500)


def objective(**options):
    """The objective a run config naming dip-vae with these objective_options trains with."""
    return TrainConfig(objective="dip-vae", objective_options=options).objective_instance()


def numpy_penalty(cov, lambda_od, lambda_d):
    """lambda_od sum_{i != j} C_ij^2 + lambda_d sum_i (C_ii - 1)^2, written out."""
    d = len(cov)
    off = sum(cov[i, j] ** 2 for i in range(d) for j in range(d) if i != j)
    return lambda_od * off + lambda_d * sum((cov[i, i] - 1) ** 2 for i in range(d))


def test_a_hand_built_batch_with_known_covariance():
    # means with covariance (divisor B = 4) [[2.5, 2], [2, 2.5]]: off-diagonal sum 2 * 2^2 = 8,
    # diagonal sum 2 * 1.5^2 = 4.5
    loc = torch.tensor([[1.0, 2.0], [-1.0, -2.0], [2.0, 1.0], [-2.0, -1.0]], dtype=torch.float64)
    cov = dip_covariance(loc)
    torch.testing.assert_close(cov, torch.tensor([[2.5, 2.0], [2.0, 2.5]], dtype=torch.float64))
    np.testing.assert_allclose(cov.numpy(), np.cov(loc.numpy().T, bias=True))
    off, diagonal = dip_penalty_terms(cov)
    assert (float(off), float(diagonal)) == (8.0, 4.5)
    assert float(DIPObjective("i", 10.0).penalty(loc, torch.ones_like(loc))[0]) == 10 * 8 + 100 * 4.5
    # DIP-VAE-II adds E_x[diag sigma^2]: scales 0.5 and 1 give 0.25 and 1 on the diagonal
    scale = torch.tensor([[0.5, 1.0]] * 4, dtype=torch.float64)
    torch.testing.assert_close(dip_covariance(loc, scale),
                               torch.tensor([[2.75, 2.0], [2.0, 3.5]], dtype=torch.float64))
    expected = 2 * 8 + 2 * (1.75**2 + 2.5**2)   # lambda_d = lambda_od = 2 for DIP-VAE-II
    assert float(DIPObjective("ii", 2.0).penalty(loc, scale)[0]) == pytest.approx(expected)
    # whitened means: DIP-VAE-I has nothing to penalize
    square = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    assert float(DIPObjective("i").penalty(square, torch.ones_like(square))[0]) == 0.0


@pytest.mark.parametrize("dip_type", ["i", "ii"])
def test_penalty_matches_numpy_on_a_random_batch(dip_type):
    g = torch.Generator().manual_seed(4)
    mixing = torch.randn(5, 5, generator=g, dtype=torch.float64)
    loc = torch.randn(37, 5, generator=g, dtype=torch.float64) @ mixing
    scale = torch.rand(37, 5, generator=g, dtype=torch.float64) + 0.1
    cov = np.cov(loc.numpy().T, bias=True)           # divisor B: the batch as an empirical distribution
    if dip_type == "ii":
        cov = cov + np.diag((scale.numpy() ** 2).mean(0))
    obj = DIPObjective(dip_type, 3.0, 7.0)
    penalty, off, diagonal = obj.penalty(loc, scale)
    assert float(penalty) == pytest.approx(numpy_penalty(cov, 3.0, 7.0), rel=1e-10)
    assert float(3 * off + 7 * diagonal) == pytest.approx(float(penalty), rel=1e-12)
    unbiased = np.cov(loc.numpy().T) + (np.diag((scale.numpy() ** 2).mean(0)) if dip_type == "ii" else 0)
    assert float(penalty) != pytest.approx(numpy_penalty(unbiased, 3.0, 7.0), rel=1e-3)   # ddof matters


def test_lambda_d_defaults_follow_the_paper():
    assert objective().lambda_od == 10.0 and objective().lambda_d == 100.0       # I: 10 lambda_od
    assert objective(dip_type="ii").lambda_d == 10.0                              # II: lambda_od
    assert objective(dip_type="ii", lambda_od=4.0).lambda_d == 4.0
    assert objective(lambda_od=2.0, lambda_d=3.0).lambda_d == 3.0
    assert OBJECTIVES.canonical("dip") == "dip-vae"


def test_loss_is_the_negative_elbo_plus_the_penalty_with_the_models_rate_and_distortion():
    model, _, _ = ppca_vae(data_dim=4, latent_dim=3)
    x = torch.randn(16, 4) * 2
    obj = objective(dip_type="ii", lambda_od=5.0)
    torch.manual_seed(1)
    result = obj(model, x)
    torch.manual_seed(1)
    out = model(x)
    q = model.encoder(x)
    cov = np.cov(q.mean.detach().numpy().T, bias=True) + np.diag(q.variance.detach().numpy().mean(0))
    expected = float((out.distortion + out.rate).mean().detach()) + numpy_penalty(cov, 5.0, 5.0)
    assert float(result.loss.detach()) == pytest.approx(expected, rel=1e-5)
    torch.testing.assert_close(result.rate, out.rate)
    torch.testing.assert_close(result.distortion, out.distortion)
    assert set(result.terms) == {"dip_off_diagonal", "dip_diagonal"}
    assert obj.validation_loss(3.0, 40.0) == 43.0
    result.loss.backward()
    assert model.encoder.log_scale.grad.abs().sum() > 0


def test_an_encoder_that_is_not_a_diagonal_gaussian_is_refused_at_prepare():
    decoder = GaussianDecoder(nn.Linear(2, 4), (4,), 0.5)
    iaf = VAE(IAFEncoder(LinearGaussianEncoder(4, 2), 2, steps=1, hidden=(8,)), decoder, StandardNormal(2))
    with pytest.raises(ObjectiveError, match=r"diagonal Gaussian encoder .*IAFEncoder gives IAFPosterior.*"
                                             r"'-' or 'mlp'"):
        objective().prepare(iaf, torch.randn(4, 4))
    objective().prepare(ppca_vae(4, 2)[0], torch.randn(4, 4))


@pytest.mark.parametrize("options,message", [
    ({"dip_type": "iii"}, r"dip_type must be one of 'i', 'ii', got 'iii'"),
    ({"dip_type": "I"}, r"dip_type must be one of 'i', 'ii', got 'I'"),
    ({"lambda_od": -1.0}, r"lambda_od must be a number >= 0 \(finite\), got -1\.0"),
    ({"lambda_od": math.nan}, r"lambda_od must be a number >= 0 \(finite\), got nan"),
    ({"lambda_d": -2.0}, r"lambda_d must be a number >= 0 \(finite\), got -2\.0"),
    ({"lambda_d": "big"}, r"lambda_d must be a number >= 0, got 'big'"),
    ({"lamda_od": 1.0}, r"'lamda_od' \(did you mean 'lambda_od'\?\)"),
])
def test_bad_options_are_named_with_what_is_allowed(options, message):
    with pytest.raises(ConfigError, match=message):
        objective(**options)


def test_a_config_builds_it_with_its_options():
    config = TrainConfig.from_dict({**SMALL, "objective": "dip",
                                    "objective_options": {"dip_type": "ii", "lambda_od": 2}})
    assert config.objective_instance() == DIPObjective("ii", 2.0, 2.0)
    with pytest.raises(ConfigError, match=r"does not use target_rate=3\.0"):
        TrainConfig(objective="dip-vae", target_rate=3.0).objective_instance()


@pytest.mark.parametrize("dip_type", ["i", "ii"])
def test_trains_a_tiny_model_by_name(dip_type):
    torch.manual_seed(0)
    model, _, _ = ppca_vae(data_dim=4, latent_dim=2, sigma=0.3)
    with torch.no_grad():
        model.decoder.trunk.weight.mul_(0.1)
    x = torch.randn(64, 2) @ torch.randn(2, 4) * 2 + 1
    obj = OBJECTIVES.build("dip-vae", dip_type=dip_type, lambda_od=10.0)
    obj.prepare(model, x)
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    losses = []
    for step in range(60):
        result = obj(model, x, step)
        opt.zero_grad()
        result.loss.backward()
        opt.step()
        losses.append(float(result.loss.detach()))
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5]), losses[::10]
    assert float(result.terms["dip_off_diagonal"]) < 0.05


def test_the_trainer_logs_both_penalty_sums(tmp_path):
    train(TrainConfig(**SMALL, epochs=1, objective="dip-vae"), tmp_path / "run", progress=False)
    (metrics,) = RunDir(tmp_path / "run").read_metrics()
    assert metrics["train_dip_off_diagonal"] >= 0 and metrics["train_dip_diagonal"] >= 0
    assert metrics["objective"] == pytest.approx(metrics["rate"] + metrics["distortion"])
