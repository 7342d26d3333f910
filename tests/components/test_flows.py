"""MADE masks and the IAF / MAF densities against brute-force change of variables."""

import math

import pytest
import torch
from torch.autograd.functional import jacobian

from rdvae.components.distributions import diagonal_normal, pairwise_log_prob
from rdvae.components.flows import (
    MADE,
    AutoregressiveFlow,
    AutoregressiveFlowMarginal,
    IAFEncoder,
    IAFPosterior,
)


def randomized(module: torch.nn.Module, std: float = 0.4) -> torch.nn.Module:
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, std)
    return module


def standard_normal_log_prob(u):
    return -0.5 * (u.pow(2).sum(-1) + u.shape[-1] * math.log(2 * math.pi))


@pytest.mark.parametrize("order", [None, [3, 1, 4, 2]])
def test_made_output_i_depends_only_on_earlier_inputs(order):
    made = randomized(MADE(4, (16, 16, 16), outputs=2, order=None if order is None else torch.tensor(order)))
    x = torch.randn(4)
    jac = jacobian(lambda v: made(v), x)  # [2, 4, 4]: output (k, i) w.r.t. input j
    deg = torch.arange(1, 5) if order is None else torch.tensor(order)
    allowed = deg[:, None] > deg[None, :]
    for k in range(2):
        assert torch.all(jac[k][~allowed] == 0)
    assert torch.all(jac.abs().sum(0)[allowed] > 0)


@pytest.mark.parametrize("mean_only", [True, False])
def test_flow_inverse_and_log_determinant_match_autograd(mean_only):
    flow = randomized(AutoregressiveFlow(3, steps=3, hidden=(12, 12, 12), mean_only=mean_only), 0.3)
    x = torch.randn(3)
    y, logdet = flow(x, remember=False)
    jac = jacobian(lambda v: flow(v, remember=False)[0], x)
    torch.testing.assert_close(logdet, torch.logdet(jac), atol=1e-5, rtol=1e-5)
    if mean_only:
        assert logdet.item() == 0.0
        torch.testing.assert_close(torch.det(jac), torch.tensor(1.0), atol=1e-5, rtol=0)
    else:
        assert abs(logdet.item()) > 1e-2
    x_back, logdet_back = flow.inverse(y.clone())
    torch.testing.assert_close(x_back, x, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logdet_back, logdet, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mean_only", [True, False])
def test_iaf_log_density_is_the_change_of_variables(mean_only):
    torch.manual_seed(1)
    d = 3
    flow = randomized(AutoregressiveFlow(d, steps=4, hidden=(10, 10, 10), mean_only=mean_only), 0.3)
    loc, scale = torch.randn(2, d), torch.rand(2, d) + 0.5
    q = IAFPosterior(diagonal_normal(loc, scale), flow)
    z = q.sample((5,))  # [5, 2, d]
    assert z.shape == (5, 2, d)
    for s in range(5):
        for b in range(2):
            zi = z[s, b].clone()  # a fresh tensor: no cache, the sequential inverse runs
            z0 = flow.inverse(zi)[0]
            jac_inv = jacobian(lambda v: flow.inverse(v)[0], zi)
            brute = diagonal_normal(loc[b], scale[b]).log_prob(z0) + torch.logdet(jac_inv)
            fresh = IAFPosterior(diagonal_normal(loc[b], scale[b]), flow)
            torch.testing.assert_close(fresh.log_prob(zi), brute, atol=1e-4, rtol=1e-4)
    # the cached path (the sample just drawn) agrees with the sequential inverse
    torch.testing.assert_close(q.log_prob(z), q.log_prob(z.clone()), atol=1e-4, rtol=1e-4)


def test_iaf_pairwise_log_prob_broadcasts_a_batch_of_z_against_a_batch_of_x():
    torch.manual_seed(2)
    flow = randomized(AutoregressiveFlow(3, steps=2, hidden=(8, 8, 8)), 0.3)
    loc, scale = torch.randn(4, 3), torch.rand(4, 3) + 0.5
    q = IAFPosterior(diagonal_normal(loc, scale), flow)
    z = torch.randn(6, 3)
    pairs = pairwise_log_prob(q, z)  # [6, 4]
    assert pairs.shape == (6, 4)
    for m in range(6):
        for k in range(4):
            one = IAFPosterior(diagonal_normal(loc[k], scale[k]), flow).log_prob(z[m].clone())
            torch.testing.assert_close(pairs[m, k], one, atol=1e-4, rtol=1e-4)


def test_inverse_cache_serves_views_of_the_same_points_and_never_stale_ones():
    flow = randomized(AutoregressiveFlow(3, steps=2, hidden=(8, 8, 8)), 0.3)
    q = IAFPosterior(diagonal_normal(torch.randn(5, 3), torch.rand(5, 3) + 0.5), flow)
    z = torch.randn(7, 3)
    first = pairwise_log_prob(q, z)
    calls = []
    original = flow.steps[0].inverse
    flow.steps[0].inverse = lambda y: calls.append(1) or original(y)
    torch.testing.assert_close(pairwise_log_prob(q, z), first)  # z.unsqueeze(-2): a view, cached
    assert not calls
    z.add_(1.0)  # modified in place: recomputed
    changed = pairwise_log_prob(q, z)
    assert calls and not torch.allclose(changed, first)
    calls.clear()
    with torch.no_grad():
        flow.steps[1].made.net[-1].bias.add_(0.1)  # parameters changed: recomputed
    pairwise_log_prob(q, z)
    assert calls


def test_iaf_density_integrates_to_one_in_two_dimensions():
    flow = randomized(AutoregressiveFlow(2, steps=2, hidden=(8, 8, 8)), 0.4)
    q = IAFPosterior(diagonal_normal(torch.zeros(2), torch.full((2,), 0.7)), flow)
    grid = torch.linspace(-8, 8, 321)
    step = (grid[1] - grid[0]).item()
    pts = torch.cartesian_prod(grid, grid)
    with torch.no_grad():
        mass = q.log_prob(pts).double().exp().sum().item() * step ** 2
    assert abs(mass - 1) < 5e-3


def test_flow_marginal_density_and_samples():
    torch.manual_seed(3)
    marginal = randomized(AutoregressiveFlowMarginal(2, steps=4, hidden=(8, 8, 8)), 0.4)
    m = marginal()
    z = torch.randn(2)
    # brute force: u = g(z) ~ N(0, I), log m(z) = log N(g(z)) + log|det dg/dz|
    g = lambda v: marginal.flow(v, remember=False)[0]  # noqa: E731
    brute = standard_normal_log_prob(g(z)) + torch.logdet(jacobian(g, z))
    torch.testing.assert_close(m.log_prob(z), brute, atol=1e-5, rtol=1e-5)
    # normalised
    grid = torch.linspace(-9, 9, 361)
    step = (grid[1] - grid[0]).item()
    cells = torch.cartesian_prod(grid, grid)
    with torch.no_grad():
        density = m.log_prob(cells).double().exp()
    assert abs(density.sum().item() * step ** 2 - 1) < 5e-3
    # samples land in each quadrant with the probability the density gives it
    n = 20000
    with torch.no_grad():
        samples = m.sample((n,))
    assert samples.shape == (n, 2)
    for sx in (1, -1):
        for sy in (1, -1):
            region = (cells[:, 0] * sx > 0) & (cells[:, 1] * sy > 0)
            expected = density[region].sum().item() * step ** 2
            observed = ((samples[:, 0] * sx > 0) & (samples[:, 1] * sy > 0)).double().mean().item()
            assert abs(observed - expected) < 4 * math.sqrt(expected * (1 - expected) / n) + 3e-3


def test_iaf_encoder_trains_through_the_model_rate():
    from rdvae.components import StandardNormal, mlp_decoder, mlp_encoder
    from rdvae.model import VAE

    encoder = IAFEncoder(mlp_encoder((1, 4, 4), 3, hidden=(16,)), 3, steps=2, hidden=(8, 8, 8))
    model = VAE(encoder, mlp_decoder((1, 4, 4), 3, hidden=(16,)), StandardNormal(3))
    x = torch.bernoulli(torch.full((7, 1, 4, 4), 0.5))
    calls = []
    original = encoder.flow.steps[0].inverse
    encoder.flow.steps[0].inverse = lambda y: calls.append(1) or original(y)
    out = model(x, samples=2)
    assert not calls  # log e(z|x) of the fresh samples reuses z0: no sequential inverse in training
    encoder.flow.steps[0].inverse = original
    assert out.rate.shape == (7,) and torch.isfinite(out.rate).all()
    out.elbo.mean().backward()
    made_grads = [p.grad for p in encoder.flow.parameters()]
    assert all(g is not None for g in made_grads)
    mean = encoder(x).mean
    assert mean.shape == (7, 3)
    torch.testing.assert_close(mean, encoder(x).mean)  # fixed-seed Monte Carlo
