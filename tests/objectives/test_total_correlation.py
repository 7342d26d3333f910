import itertools
import math

import pytest
import torch
from tests.helpers import LinearGaussianEncoder
from torch.distributions import MultivariateNormal, Normal

from rdvae.components import GaussianMixtureMarginal, StandardNormal
from rdvae.evaluate import aggregate_log_density
from rdvae.objectives.total_correlation import (
    BetaTCObjective,
    FactorizationError,
    minibatch_surgery,
    per_dimension_log_prob,
    stratified_log_weights,
)


@pytest.mark.parametrize("b,n", [(2, 2), (2, 10), (5, 7), (8, 1000)])
def test_stratified_weights_own_sample_on_the_diagonal(b, n):
    w = stratified_log_weights(b, n).exp()
    torch.testing.assert_close(torch.diagonal(w), torch.full((b,), 1.0 / n, dtype=torch.float64))
    torch.testing.assert_close(w.sum(1), torch.ones(b, dtype=torch.float64))
    stratum = (n - b + 1) / (n * (b - 1))
    rows = torch.arange(b)
    torch.testing.assert_close(w[rows, (rows + 1) % b], torch.full((b,), stratum, dtype=torch.float64))
    off = ~torch.eye(b, dtype=torch.bool)
    off[rows, (rows + 1) % b] = False
    assert torch.allclose(w[off], torch.tensor(1.0 / (b - 1), dtype=torch.float64))
    # the public beta-TCVAE code's matrix (1/N at stride B, i.e. column 0) is not this one
    if b > 2 and n > b:
        assert not torch.allclose(w[:, 0], torch.full((b,), 1.0 / n, dtype=torch.float64))


def test_stratified_weights_reject_impossible_sizes():
    with pytest.raises(ValueError, match="batch size"):
        stratified_log_weights(5, 3)
    with pytest.raises(ValueError, match="batch size"):
        stratified_log_weights(1, 3)


def test_minibatch_density_is_unbiased_over_all_minibatches():
    """Exact enumeration over every ordered minibatch of B = 3 from N = 5: the average of the
    stratified estimate of q(z_i) (z_i fixed per example) equals the full-data q(z_i)."""
    torch.manual_seed(3)
    n, b = 5, 3
    enc = LinearGaussianEncoder(2, 2)
    x = torch.randn(n, 2) * 2
    with torch.no_grad():
        z_fixed = enc(x).sample()
        full = aggregate_log_density(enc, x, z_fixed).double().exp()
    sums, counts = torch.zeros(n, dtype=torch.float64), torch.zeros(n)
    marginal = StandardNormal(2)()
    for batch in itertools.permutations(range(n), b):
        idx = torch.tensor(batch)
        with torch.no_grad():
            post = enc(x[idx])
            terms = minibatch_surgery(post, z_fixed[idx], marginal, n)
            log_own = post.log_prob(z_fixed[idx]).double()
        q_hat = (log_own - terms.index_code_mi.double()).exp()
        sums.index_add_(0, idx, q_hat)
        counts.index_add_(0, idx, torch.ones(b))
    torch.testing.assert_close(sums / counts.double(), full, rtol=1e-4, atol=0)


def test_minibatch_terms_telescope_to_the_monte_carlo_rate_and_match_the_full_estimator():
    torch.manual_seed(0)
    n, d = 64, 2
    enc = LinearGaussianEncoder(3, d)
    x = torch.randn(n, 3)
    mix = GaussianMixtureMarginal(d, components=3)()
    with torch.no_grad():
        post = enc(x)
        z = post.sample()
        terms = minibatch_surgery(post, z, mix, n)
        rate = post.log_prob(z) - mix.log_prob(z)
    torch.testing.assert_close(terms.rate, rate, atol=1e-4, rtol=0)
    # with the whole data set as the "minibatch" the estimate of q(z) is close to the exact one
    with torch.no_grad():
        exact_mi = (post.log_prob(z) - aggregate_log_density(enc, x, z)).mean()
    assert abs(terms.index_code_mi.mean() - exact_mi) < 0.05


def test_minibatch_surgery_is_differentiable_and_objective_reduces_to_the_elbo():
    enc = LinearGaussianEncoder(3, 2)
    x = torch.randn(16, 3)
    post = enc(x)
    z = post.rsample()
    marginal = StandardNormal(2)()
    terms = minibatch_surgery(post, z, marginal, dataset_size=1000)
    distortion = torch.rand(16)
    loss = BetaTCObjective(1000).loss(distortion, terms)
    expected = distortion.mean() + (post.log_prob(z) - marginal.log_prob(z)).mean()
    torch.testing.assert_close(loss, expected, atol=1e-4, rtol=0)
    heavier = BetaTCObjective(1000, beta=6.0).loss(distortion, terms)
    torch.testing.assert_close(heavier - loss, 5.0 * terms.total_correlation.mean())
    heavier.backward()
    assert enc.linear.weight.grad is not None and torch.isfinite(enc.linear.weight.grad).all()


def test_per_dimension_log_prob_of_a_mixture_is_the_one_dimensional_mixture():
    mix = GaussianMixtureMarginal(2, components=3)
    with torch.no_grad():
        mix.logits.copy_(torch.tensor([0.1, 0.7, -0.4]))
    dist = mix()
    z = torch.randn(9, 2)
    w = torch.softmax(dist.logits, 0)
    for j in range(2):
        brute = torch.log(sum(w[k] * Normal(dist.loc[k, j], dist.scale[k, j]).log_prob(z[:, j]).exp()
                              for k in range(3)))
        torch.testing.assert_close(per_dimension_log_prob(dist, z, max_entries=6)[:, j], brute)
    with pytest.raises(FactorizationError, match="one-dimensional marginals"):
        per_dimension_log_prob(MultivariateNormal(torch.zeros(2), torch.eye(2)), z)
    assert math.isfinite(per_dimension_log_prob(StandardNormal(2)(), z).sum().item())
