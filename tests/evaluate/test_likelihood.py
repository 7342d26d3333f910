import math

import torch
from tests.helpers import ppca_log_likelihood, ppca_vae, set_exact_posterior

from rdvae.evaluate import iw_log_likelihood, rate_distortion


def _data(W, mu, sigma, n=200, seed=1):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, W.shape[1], generator=g)
    return z @ W.T + mu + sigma * torch.randn(n, W.shape[0], generator=g)


def _approximate_posterior(model, W, sigma, widen=2.0, shift=0.3):
    """A diagonal, too wide and shifted version of the exact posterior: a loose ELBO."""
    cov = set_exact_posterior(model, W, sigma)
    with torch.no_grad():
        model.encoder.log_scale.copy_(torch.log(widen * cov.diagonal().sqrt()))
        model.encoder.linear.bias.add_(shift)


def test_iw_bound_converges_to_closed_form_ppca_likelihood():
    sigma = 0.3
    model, W, mu = ppca_vae(data_dim=4, latent_dim=2, sigma=sigma)
    _approximate_posterior(model, W, sigma)
    x = _data(W, mu, sigma)
    exact = ppca_log_likelihood(x, W, mu, sigma)
    rate, distortion = rate_distortion(model, x)
    elbo = -(rate + distortion)
    iw = {k: iw_log_likelihood(model, x, k) for k in (1, 10, 100, 5000)}
    gap = {k: (exact - v).mean().item() for k, v in iw.items()}
    # each is a lower bound in expectation; the ELBO gap is real (diagonal, widened encoder)
    assert (exact - elbo).mean() > 5
    assert abs(gap[1] - (exact - elbo).mean().item()) < 0.5  # k = 1 is an ELBO estimate
    assert gap[1] > gap[10] > gap[100] > 0.02  # the bound tightens as k grows
    assert abs(gap[5000]) < 0.01  # ... and reaches the closed form
    assert (iw[5000] - exact).abs().mean() < 0.1  # per example, within Monte Carlo noise


def test_iw_is_exact_with_the_exact_posterior_when_it_is_diagonal():
    sigma = 0.3
    model, W, mu = ppca_vae(data_dim=3, latent_dim=2, sigma=sigma)
    # orthogonal columns make the posterior covariance diagonal
    with torch.no_grad():
        Q, _ = torch.linalg.qr(torch.randn(3, 2))
        W = Q * torch.tensor([2.0, 0.7])
        model.decoder.trunk.weight.copy_(W)
    cov = set_exact_posterior(model, W, sigma)
    assert torch.allclose(cov, torch.diag(cov.diagonal()), atol=1e-6)
    with torch.no_grad():
        model.encoder.log_scale.copy_(0.5 * cov.diagonal().log())
    x = _data(W, mu, sigma, n=50)
    torch.testing.assert_close(iw_log_likelihood(model, x, 3), ppca_log_likelihood(x, W, mu, sigma),
                               atol=1e-4, rtol=0)


def test_iw_batching_over_samples_matches_unbatched():
    model, W, mu = ppca_vae()
    _approximate_posterior(model, W, 0.5, widen=1.3, shift=0.0)
    x = _data(W, mu, 0.5, n=37)
    torch.manual_seed(3)
    small_rows = iw_log_likelihood(model, x, 64, rows=7)
    torch.manual_seed(3)
    big_rows = iw_log_likelihood(model, x, 64, rows=10_000)
    exact = ppca_log_likelihood(x, W, mu, 0.5)
    # different chunking draws different samples: both agree with the closed form on average
    assert math.isfinite(small_rows.sum().item())
    assert abs((small_rows - exact).mean()) < 0.03 and abs((big_rows - exact).mean()) < 0.03
