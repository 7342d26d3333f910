"""AIS against closed forms and brute force: probabilistic PCA, whose log p(x) and whose decoder's
rate-distortion function are Gaussian integrals, and tiny 2-d latent models (Bernoulli and Gaussian
decoders, VampPrior and flow marginals) whose log p(x) is a quadrature on a grid."""

import math

import pytest
import torch
from tests.helpers import ppca_log_likelihood, ppca_vae
from torch import nn
from torch.distributions import Independent

from rdvae.evaluate.ais import (
    ais_log_likelihood,
    anneal,
    bdmc,
    gradient_evaluations,
    rate_distortion_curve,
    rate_distortion_schedule,
    sigmoid_schedule,
    simulate,
    with_observation_noise,
)
from rdvae.presets import build_model

X_DIM, Z_DIM, SIGMA = 6, 2, 0.5


def ppca(n=8):
    model, weight, bias = ppca_vae(data_dim=X_DIM, latent_dim=Z_DIM, sigma=SIGMA, seed=3)
    x, _ = simulate(model, n, seed=4)
    return model, x, weight.double(), bias.double()


def exact_log_px(x, weight, bias):
    return ppca_log_likelihood(x.double(), weight, bias, SIGMA)


def exact_rate_distortion(x, weight, bias, beta, sigma=SIGMA):
    """p_beta(z|x) ~ N(0, I) N(x; W z + b, s^2)^beta is N(mu, L^-1), L = I + beta W'W / s^2:
    D_beta = E ||x - W z - b||^2 / 2 s^2 + (n/2) log 2 pi s^2, R_beta = KL(N(mu, L^-1) || N(0, I)),
    and log Z_beta = log int N(z; 0, I) N(x; W z + b, s^2 I)^beta dz, a Gaussian integral."""
    x_dim, z_dim = weight.shape
    x = x.double() - bias
    precision = torch.eye(z_dim, dtype=torch.float64) + beta * weight.T @ weight / sigma**2
    cov = torch.linalg.inv(precision)
    mu = (beta / sigma**2) * x @ weight @ cov
    residual = (x - mu @ weight.T).pow(2).sum(-1) + torch.trace(weight @ cov @ weight.T)
    distortion = residual / (2 * sigma**2) + x_dim / 2 * math.log(2 * math.pi * sigma**2)
    rate = 0.5 * (torch.trace(cov) + mu.pow(2).sum(-1) - z_dim - torch.logdet(cov))
    log_z = (-beta * x_dim / 2 * math.log(2 * math.pi * sigma**2) - 0.5 * torch.logdet(precision)
             - beta * x.pow(2).sum(-1) / (2 * sigma**2) + 0.5 * (mu @ precision * mu).sum(-1))
    return rate, distortion, log_z


def test_schedules_run_from_zero_to_their_end():
    s = sigmoid_schedule(100)
    assert s[0] == 0 and s[-1] == 1 and (s.diff() > 0).all()
    r = rate_distortion_schedule(50, beta_max=100.0, beta_min=0.01)
    assert r[0] == 0 and r[1] == pytest.approx(0.01) and r[-1] == pytest.approx(100.0)
    assert (r.diff() > 0).all() and (r == 1.0).sum() == 1     # through beta = 1 exactly
    spaced = rate_distortion_schedule(50, beta_max=100.0, beta_min=0.01, through=())
    assert spaced[1:].log().diff().std() < 1e-9                # evenly spaced in log beta


def test_the_closed_forms_agree_with_each_other():
    model, x, weight, bias = ppca()
    rate, distortion, log_z = exact_rate_distortion(x, weight, bias, 1.0)
    torch.testing.assert_close(log_z, exact_log_px(x, weight, bias))
    torch.testing.assert_close(log_z, -rate - distortion)       # log Z_beta = -beta D_beta - R_beta
    rate, distortion, log_z = exact_rate_distortion(x, weight, bias, 7.0)
    torch.testing.assert_close(log_z, -rate - 7.0 * distortion)


def test_ais_log_likelihood_of_ppca_is_within_a_tenth_of_a_nat():
    """Per example within 0.1 nats, and no bias: the mean error over examples is a few hundredths
    (adapting the step sizes inside the estimating run, not in a pilot, made it about -0.1 here)."""
    model, x, weight, bias = ppca()
    result = ais_log_likelihood(model, x, steps=1000, chains=128, leapfrog=5, seed=0)
    error = result["log_px"].double() - exact_log_px(x, weight, bias)
    assert error.abs().max() < 0.1, error
    assert abs(error.mean()) < 0.03, error
    assert 0.4 < result["ais_acceptance"] < 0.95
    assert result["ais_gradient_evaluations"] == ((1000 + 250) * 5 + 2) * 128 * len(x)
    assert result["ais_nll"] == pytest.approx(-result["log_px"].double().mean().item())


def test_ais_rate_distortion_curve_of_a_linear_decoder_is_the_analytic_curve():
    """Every AIS point (R_beta, D_beta) lies within 2 % of the ranges from the analytic curve, and
    log Z_beta is within 0.1 nats of its closed form at every beta. (Monte Carlo error in D_beta moves a
    point along the curve's tangent, slope -1/beta, so the distance to the curve is the measure.)"""
    model, x, weight, bias = ppca()
    curve = rate_distortion_curve(model, x, steps=1000, beta_max=20.0, beta_min=0.01, points=10, chains=16,
                                  leapfrog=5, seed=1)
    assert len(curve["beta"]) == 10 and curve["beta"][0] == 0.01 and curve["beta"][-1] == 20.0
    assert curve["ais_nll"] == pytest.approx(-exact_log_px(x, weight, bias).mean().item(), abs=0.1)

    def exact_means(beta):
        return torch.stack([t.mean() for t in exact_rate_distortion(x, weight, bias, beta)])

    rates, distortions, log_zs = torch.stack([exact_means(b) for b in curve["beta"]]).T
    dense = torch.stack([exact_means(b) for b in torch.logspace(-4, 3, 3000, dtype=torch.float64).tolist()])
    scale = torch.stack([rates.max() - rates.min(), distortions.max() - distortions.min()])
    for r, d in zip(curve["rate"], curve["distortion"], strict=True):
        distance = ((dense[:, :2] - torch.tensor([r, d], dtype=torch.float64)) / scale).norm(dim=1).min()
        assert distance < 0.02, (r, d, distance)
    assert (torch.tensor(curve["log_normalizer"], dtype=torch.float64) - log_zs).abs().max() < 0.1
    # log Z_beta = -beta D_beta - R_beta along the whole curve; R decreases and D increases with beta
    for lz, b, r, d in zip(*(curve[k] for k in ("log_normalizer", "beta", "rate", "distortion")),
                           strict=True):
        assert lz == pytest.approx(-b * d - r, abs=1e-6)
    assert curve["rate"][-1] > curve["rate"][0] and curve["distortion"][-1] < curve["distortion"][0]


def test_bdmc_brackets_the_exact_log_likelihood_and_the_gap_shrinks_with_steps():
    model, _, weight, bias = ppca()
    short = bdmc(model, steps=20, examples=24, chains=8, leapfrog=5, seed=2)
    long = bdmc(model, steps=1000, examples=24, chains=8, leapfrog=5, seed=2)
    x, _ = simulate(model, 24, seed=2 + 2)   # bdmc simulates with its own seed, seed + 2
    exact = exact_log_px(x, weight, bias).mean().item()
    for result in (short, long):
        assert result["lower_mean"] <= exact + 0.05
        assert result["upper_mean"] >= exact - 0.05
    assert short["gap"] > 0.1 and abs(long["gap"]) < 0.1 and long["gap"] < short["gap"] / 2


def test_few_steps_underestimate_and_more_steps_close_the_gap():
    """With one step AIS is importance sampling from the marginal: a strict lower bound on average."""
    model, x, weight, bias = ppca()
    exact = exact_log_px(x, weight, bias).mean().item()
    crude = ais_log_likelihood(model, x, steps=1, chains=4, leapfrog=2, seed=0)
    fine = ais_log_likelihood(model, x, steps=200, chains=4, leapfrog=5, seed=0)
    assert -crude["ais_nll"] < -fine["ais_nll"] <= exact + 0.05


def quadrature_log_px(model, x, radius=6.0, points=241):
    """log p(x) = log int m(z) d(x|z) dz by the rectangle rule on a 2-d grid (exact to 1e-3 nats here:
    601 points per side agree)."""
    grid = torch.linspace(-radius, radius, points)
    z = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 1, 2).expand(-1, len(x), 2)
    with torch.no_grad():
        log_joint = model.marginal_distribution().log_prob(z) - model.distortion_of(x, z)
    return torch.logsumexp(log_joint.double(), 0) + 2 * math.log(grid[1] - grid[0])


@pytest.mark.parametrize("family", ["mlp", "mlp-v", "mlp--+", "mlp-gauss"])
def test_ais_matches_quadrature_for_bernoulli_and_gaussian_decoders_and_learned_marginals(family):
    """Any model of the contract: Bernoulli (mlp) and Gaussian (mlp-gauss) decoders, the VampPrior (mlp-v)
    and a flow marginal (mlp--+), with 2-d latents so that log p(x) is a quadrature."""
    torch.manual_seed(5)
    options = {"mlp-v": {"pseudo_inputs": 8}, "mlp--+": {"made_hidden": [16]},
               "mlp-gauss": {"variance": "fixed", "sigma": 0.3}}.get(family, {})
    model = build_model(family, event_shape=(1, 4, 4), latent_dim=2, hidden=[32], **options).eval()
    with torch.no_grad():                    # sharper than at initialisation: posteriors far from m(z)
        for p in model.decoder.parameters():
            p.mul_(2 if family == "mlp-gauss" else 6)
        for p in model.marginal.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x, _ = simulate(model, 4, seed=6)
    exact = quadrature_log_px(model, x)
    result = ais_log_likelihood(model, x, steps=500, chains=256, leapfrog=5, seed=0)
    assert (result["log_px"].double() - exact).abs().max() < 0.1, (result["log_px"], exact)


def test_an_observation_noise_makes_any_decoder_gaussian():
    model, x, weight, bias = ppca()
    noisy = with_observation_noise(model, 2.0)
    z = torch.randn(3, len(x), Z_DIM)
    mean = model.decoder(z.reshape(-1, Z_DIM)).mean.reshape(3, len(x), X_DIM)
    expected = -Independent(torch.distributions.Normal(mean, 2.0), 1).log_prob(x)
    torch.testing.assert_close(noisy.distortion_of(x, z), expected)
    own = -Independent(torch.distributions.Normal(mean, SIGMA), 1).log_prob(x)
    torch.testing.assert_close(model.distortion_of(x, z), own)          # the model itself is untouched
    assert type(noisy) is type(model) and noisy.encoder is model.encoder
    with pytest.raises(ValueError, match="observation noise sigma must be a positive number, got -1"):
        with_observation_noise(model, -1.0)


def test_gradient_evaluations_are_counted_per_chain_and_example():
    model, x, _, _ = ppca(n=3)
    run = anneal(model, x, sigmoid_schedule(8), chains=2, leapfrog=3, tune_fraction=0.5)
    assert run.gradient_evaluations == gradient_evaluations(8, 3, 4) == (8 + 4) * 3 + 2
    fixed = anneal(model, x, sigmoid_schedule(8), chains=2, leapfrog=3, tune_fraction=0.0)
    assert fixed.gradient_evaluations == 8 * 3 + 1
    assert (fixed.step_size == 0.1).all()


def test_chunks_and_seeds_reproduce():
    model, x, _, _ = ppca(n=5)
    one = anneal(model, x, sigmoid_schedule(20), chains=3, seed=7)
    again = anneal(model, x, sigmoid_schedule(20), chains=3, seed=7)
    torch.testing.assert_close(one.log_normalizer, again.log_normalizer)
    chunked = anneal(model, x, sigmoid_schedule(20), chains=3, seed=7, examples_per_chunk=2)
    assert chunked.log_normalizer.shape == (1, 5) and chunked.z.shape == (3, 5, Z_DIM)
    assert torch.isfinite(chunked.log_normalizer).all()


def test_discrete_latents_and_bad_arguments_are_refused():
    model, x, _, _ = ppca()
    with pytest.raises(ValueError, match="chains must be an integer >= 1, got 0"):
        anneal(model, x, sigmoid_schedule(5), chains=0)
    with pytest.raises(ValueError, match="monotone"):
        anneal(model, x, torch.tensor([0.0, 0.5, 0.2, 1.0]))
    with pytest.raises(ValueError, match="target_acceptance"):
        anneal(model, x, sigmoid_schedule(5), target_acceptance=1.5)
    with pytest.raises(ValueError, match="annealing steps must be an integer >= 1, got 0"):
        sigmoid_schedule(0)

    class Bits(nn.Module):
        latent_dim = 3

        def forward(self, encoder):
            return Independent(torch.distributions.Bernoulli(probs=torch.full((3,), 0.5)), 1)

    binary = type(model)(model.encoder, model.decoder, Bits())
    with pytest.raises(ValueError, match="real-valued latents"):
        anneal(binary, x, sigmoid_schedule(5))
