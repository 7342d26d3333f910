"""The conditional-likelihood (sleep) objective against the closed-form posterior of a linear
Gaussian generator: minimising -E log e(z|x) over (z, x) ~ m(z) d(x|z) is minimising the forward KL
E_x KL(p(z|x) || e(z|x)), whose optimum for a diagonal Gaussian e with a linear mean is the exact
posterior mean and the diagonal of the exact posterior covariance (moment matching)."""

import pytest
import torch
from tests.helpers import ppca_vae

from rdvae.objectives import ConditionalLikelihoodObjective, ObjectiveError, build_objective

SIGMA = 0.5


def exact_posterior(W, mu):
    """p(z|x) = N(A (x - mu), sigma^2 M^-1), M = W'W + sigma^2 I, A = M^-1 W'."""
    M = W.T @ W + SIGMA**2 * torch.eye(W.shape[1])
    return torch.linalg.solve(M, W.T), SIGMA**2 * torch.linalg.inv(M)


def test_the_encoder_recovers_the_exact_posterior_of_a_linear_generator():
    model, W, mu = ppca_vae(data_dim=4, latent_dim=2, sigma=SIGMA, seed=1)
    decoder_before = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    objective = build_objective("conditional-likelihood", {}, {})
    objective.prepare(model, torch.zeros(2, 4))
    params = [p for p in model.parameters() if p.requires_grad]
    assert {id(p) for p in params} == {id(p) for p in model.encoder.parameters()}   # decoder, marginal frozen
    optimizer = torch.optim.Adam(params, lr=0.02)
    batch = torch.zeros(512, 4)
    for step in range(1500):
        if step == 1000:
            for group in optimizer.param_groups:
                group["lr"] = 0.002
        out = objective(model, batch, step)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    A, cov = exact_posterior(W, mu)
    weight, bias = model.encoder.linear.weight.detach(), model.encoder.linear.bias.detach()
    assert torch.allclose(weight, A, atol=0.03), (weight, A)
    assert torch.allclose(bias, -A @ mu, atol=0.03)
    variance = (2 * model.encoder.log_scale.detach()).exp()
    assert torch.allclose(variance, cov.diagonal(), rtol=0.05), (variance, cov.diagonal())
    for key, value in model.decoder.state_dict().items():
        assert torch.equal(value, decoder_before[key])
    # the figures it reports are the rate and distortion of the simulated batch, and log e(z|x)
    assert out.rate.shape == out.distortion.shape == (512,)
    assert out.terms["conditional_log_likelihood"].mean() == pytest.approx(-out.loss.item(), rel=1e-5)


def test_decoder_means_instead_of_draws_and_options_are_checked():
    model, W, mu = ppca_vae(data_dim=4, latent_dim=2, sigma=SIGMA, seed=1)
    objective = ConditionalLikelihoodObjective(noise=False)
    z, x = objective.simulate(model, 5)
    assert torch.allclose(x, z @ W.T + mu, atol=1e-5)          # x = g(z) exactly
    with pytest.raises(ValueError, match="option noise='yes' must be true or false"):
        build_objective("conditional-likelihood", {}, {}, {"noise": "yes"})
    for p in model.encoder.parameters():
        p.requires_grad_(False)
    with pytest.raises(ObjectiveError, match="no trainable parameters"):
        objective.prepare(model, torch.zeros(2, 4))
