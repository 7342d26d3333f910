import math

import pytest
import torch
from tests.helpers import LinearGaussianEncoder
from torch import nn
from torch.distributions import MultivariateNormal, Normal

from rdvae.components import GaussianMixtureMarginal, StandardNormal, VampPrior
from rdvae.evaluate import ELBOSurgery, Estimate, elbo_surgery, format_surgery
from rdvae.evaluate.surgery import marginal_kl_terms, rate_terms
from rdvae.model import VAE


def tiny_model(marginal: str, data_dim=3, latent_dim=2, seed=0) -> VAE:
    torch.manual_seed(seed)
    enc = LinearGaussianEncoder(data_dim, latent_dim)
    with torch.no_grad():
        enc.linear.weight.mul_(2.0)
        enc.log_scale.copy_(torch.linspace(-1.0, 0.2, latent_dim))
    if marginal == "normal":
        m = StandardNormal(latent_dim)
    elif marginal == "mixture":
        m = GaussianMixtureMarginal(latent_dim, components=3)
        with torch.no_grad():
            m.logits.copy_(torch.tensor([0.3, -0.2, 0.5]))
            m.log_scale.uniform_(-0.5, 0.3)
    else:
        m = VampPrior(latent_dim, (data_dim,), pseudo_inputs=2)
    return VAE(enc, None, m)


def brute_log_q(model, x, z):
    """log q(z) and log q(z_j) with one scalar Normal per (point, example, dimension)."""
    enc = model.encoder
    m_pts, d = z.shape
    log_q, log_q_dims = [], []
    for zm in z:
        per_example, per_dim = [], [[] for _ in range(d)]
        for xn in x:
            q = enc(xn[None]).base_dist
            total = 0.0
            for j in range(d):
                lp = Normal(q.loc[0, j].item(), q.scale[0, j].item()).log_prob(zm[j]).item()
                per_dim[j].append(lp)
                total += lp
            per_example.append(total)
        log_q.append(torch.logsumexp(torch.tensor(per_example), 0).item() - math.log(len(x)))
        log_q_dims.append([torch.logsumexp(torch.tensor(p), 0).item() - math.log(len(x)) for p in per_dim])
    return torch.tensor(log_q), torch.tensor(log_q_dims)


def brute_marginal(marginal_dist, z):
    """log m(z) and log m_j(z_j), component by component."""
    if hasattr(marginal_dist, "loc") and hasattr(marginal_dist, "logits"):
        w = torch.softmax(marginal_dist.logits, 0)
        loc, scale = marginal_dist.loc, marginal_dist.scale
    else:
        base = marginal_dist.base_dist
        w, loc, scale = torch.ones(1), base.loc[None], base.scale[None]
    log_m, log_m_dims = [], []
    for zm in z:
        joint = sum(w[k] * torch.exp(Normal(loc[k], scale[k]).log_prob(zm).sum()) for k in range(len(w)))
        dims = [sum(w[k] * torch.exp(Normal(loc[k, j], scale[k, j]).log_prob(zm[j])) for k in range(len(w)))
                for j in range(len(zm))]
        log_m.append(torch.log(joint).item())
        log_m_dims.append([math.log(v.item()) for v in dims])
    return torch.tensor(log_m), torch.tensor(log_m_dims)


@pytest.mark.parametrize("marginal", ["normal", "mixture", "vamp"])
def test_chunked_terms_equal_brute_force_on_the_same_draws(marginal):
    model = tiny_model(marginal)
    x = torch.randn(5, 3)
    idx = torch.tensor([0, 1, 2, 3, 4, 2, 0])
    with torch.no_grad():
        post = model.encoder(x[idx])
        z = post.sample()
        log_post = post.log_prob(z)
        m = model.marginal_distribution()
        terms = rate_terms(model.encoder, m, x, z, log_post, batch_size=2)
        split = marginal_kl_terms(model.encoder, m, x, z, terms["log_q"], terms["log_m"], batch_size=2)
    log_q, log_q_dims = brute_log_q(model, x, z)
    log_m, log_m_dims = brute_marginal(m, z)
    close = dict(atol=2e-4, rtol=0)
    torch.testing.assert_close(terms["index_code_mi"], log_post - log_q, **close)
    torch.testing.assert_close(terms["marginal_kl"], log_q - log_m, **close)
    torch.testing.assert_close(split["total_correlation"], log_q - log_q_dims.sum(1), **close)
    torch.testing.assert_close(split["dimension_kl"], (log_q_dims - log_m_dims).sum(1), **close)
    torch.testing.assert_close(split["marginal_dependence"], log_m_dims.sum(1) - log_m, **close)
    if marginal == "normal":
        assert split["marginal_dependence"].abs().max() < 1e-5


def grid_surgery(model, x, half_width=10.0, steps=600):
    """Every term by 2-D quadrature on a grid (exact up to the grid)."""
    g = torch.linspace(-half_width, half_width, steps, dtype=torch.float64)
    h = (g[1] - g[0]).item()
    z = torch.cartesian_prod(g, g)
    with torch.no_grad():
        q = model.encoder(x)
        loc, scale = q.base_dist.loc.double(), q.base_dist.scale.double()
        comp_dims = Normal(loc[None], scale[None]).log_prob(z[:, None, :])  # [G, N, 2]
        comp = comp_dims.sum(-1)
        log_q = torch.logsumexp(comp, 1) - math.log(len(x))
        # 1-D aggregate densities on the 1-D grid
        log_q1 = [torch.logsumexp(Normal(loc[:, j], scale[:, j]).log_prob(g[:, None]), 1) - math.log(len(x))
                  for j in range(2)]
        log_q_dims = log_q1[0].repeat_interleave(steps) + log_q1[1].repeat(steps)
        m = model.marginal_distribution()
        log_m = m.log_prob(z.float()).double()
        log_m_dims = torch.tensor(0.0, dtype=torch.float64)
        from rdvae.objectives.total_correlation import per_dimension_log_prob
        log_m_dims = per_dimension_log_prob(m, z.float()).double().sum(-1)
    weight = log_q.exp() * h * h

    def integral(f):
        return (weight * f).sum().item()

    ent_terms = (comp.exp() * (comp)).sum(0) * h * h  # E_{e(z|x_n)} log e(z|x_n)
    avg_kl = (ent_terms.mean() - (comp.exp() * log_m[:, None]).sum(0).mean() * h * h).item()
    return {
        "avg_kl": avg_kl,
        "index_code_mi": avg_kl - integral(log_q - log_m),
        "marginal_kl": integral(log_q - log_m),
        "total_correlation": integral(log_q - log_q_dims),
        "dimension_kl": integral(log_q_dims - log_m_dims),
        "marginal_dependence": integral(log_m_dims - log_m),
    }


@pytest.mark.parametrize("marginal", ["normal", "mixture"])
def test_surgery_matches_quadrature_within_monte_carlo_error(marginal):
    model = tiny_model(marginal, seed=1)
    x = torch.randn(3, 3)
    result = elbo_surgery(model, x, samples_per_example=4000, batch_size=512, seed=3)
    exact = grid_surgery(model, x)
    assert result.avg_kl_method == ("analytic" if marginal == "normal" else "monte carlo")
    for name, value in exact.items():
        est = getattr(result, name)
        tolerance = 4 * est.stderr + 2e-3 if name != "avg_kl" or marginal != "normal" else 2e-3
        assert abs(est.value - value) < tolerance, (name, est, value)
    assert result.mi_within_limit and result.index_code_mi.value <= math.log(3)


def test_mi_plus_marginal_kl_equals_average_kl_within_monte_carlo_error():
    model = tiny_model("normal", latent_dim=2, seed=2)
    x = torch.randn(40, 3)
    result = elbo_surgery(model, x, samples_per_example=50, seed=1)
    assert result.avg_kl_method == "analytic"
    se = result.index_code_mi.stderr + result.marginal_kl.stderr
    assert abs(result.identity_residual) < 4 * se
    # the split telescopes exactly on the same draws; m = N(0, I) factorizes
    split = result.total_correlation.value + result.dimension_kl.value + result.marginal_dependence.value
    assert abs(split - result.marginal_kl.value) < 1e-4
    assert abs(result.marginal_dependence.value) < 1e-5
    # VampPrior: no analytic KL, the Monte Carlo average KL telescopes exactly
    vamp = elbo_surgery(tiny_model("vamp"), x, seed=1)
    assert vamp.avg_kl_method == "monte carlo" and abs(vamp.identity_residual) < 1e-4


def test_mi_reaches_log_n_when_codes_identify_examples_and_stays_below():
    model = tiny_model("normal")
    with torch.no_grad():
        model.encoder.linear.weight.zero_()
        model.encoder.linear.weight[:, :2] = 200 * torch.eye(2)
        model.encoder.log_scale.fill_(-5)
    x = torch.randn(30, 3)
    result = elbo_surgery(model, x, points=20, dimension_points=10)
    assert result.points == 20 and result.dimension_points == 10 and result.examples == 30
    assert result.mi_within_limit and abs(result.index_code_mi.value - math.log(30)) < 1e-3
    bad = ELBOSurgery(Estimate(math.log(30) + 0.5, 0.1), Estimate(math.log(30) + 0.5, 0.1),
                      Estimate(0.0, 0.0), None, None, None, 30, 30, 0, "analytic")
    assert not bad.mi_within_limit and "VIOLATED" in format_surgery(bad)


def test_chunk_sizes_do_not_change_the_terms():
    model = tiny_model("mixture")
    x = torch.randn(23, 3)
    with torch.no_grad():
        post = model.encoder(x)
        z = post.sample()
        log_post = post.log_prob(z)
        m = model.marginal_distribution()
    results = []
    for batch_size in (1000, 3):
        terms = rate_terms(model.encoder, m, x, z, log_post, batch_size=batch_size)
        split = marginal_kl_terms(model.encoder, m, x, z, terms["log_q"], terms["log_m"],
                                  batch_size=batch_size)
        results.append({**terms, **split})
    for name, value in results[0].items():
        torch.testing.assert_close(value, results[1][name], atol=1e-5, rtol=0)


class FullCovarianceEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2)

    def forward(self, x):
        cov = torch.tensor([[1.0, 0.5], [0.5, 1.0]])
        return MultivariateNormal(self.linear(x), covariance_matrix=cov.expand(len(x), 2, 2))


def test_split_is_reported_missing_for_a_non_factorized_encoder():
    model = VAE(FullCovarianceEncoder(), None, StandardNormal(2))
    result = elbo_surgery(model, torch.randn(6, 3))
    assert result.total_correlation is None and "factorized" in result.dimension_note
    d = result.as_dict()
    assert d["surgery_total_correlation"] is None and d["surgery_index_code_mi"] is not None
    assert result.mi_within_limit
