import torch

from rdvae.components import StandardNormal, VampPrior, mlp_decoder, mlp_encoder
from rdvae.model import VAE, analytic_kl


def _vae(marginal=None, analytic=True):
    shape = (1, 4, 4)
    return VAE(mlp_encoder(shape, 3, hidden=(16,)), mlp_decoder(shape, 3, hidden=(16,)),
               marginal or StandardNormal(3), analytic_rate=analytic)


def test_analytic_kl_agrees_with_monte_carlo_rate():
    torch.manual_seed(1)
    model = _vae()
    x = torch.rand(6, 1, 4, 4).bernoulli()
    q = model.encoder(x)
    exact = analytic_kl(q, model.marginal_distribution())
    model.analytic_rate = False
    mc = model(x, samples=200_000).rate
    torch.testing.assert_close(mc, exact, atol=0.01, rtol=0.01)


def test_closed_form_gaussian_kl():
    model = _vae()
    q = model.encoder(torch.rand(4, 1, 4, 4))
    mu, s = q.base_dist.loc, q.base_dist.scale
    closed = 0.5 * (mu**2 + s**2 - 1 - 2 * s.log()).sum(-1)
    torch.testing.assert_close(analytic_kl(q, model.marginal_distribution()), closed)


def test_vampprior_rate_is_monte_carlo_and_elbo_is_minus_r_plus_d():
    model = _vae(VampPrior(3, (1, 4, 4), pseudo_inputs=4))
    x = torch.rand(5, 1, 4, 4).bernoulli()
    assert analytic_kl(model.encoder(x), model.marginal_distribution()) is None
    out = model(x, samples=3)
    assert out.rate.shape == out.distortion.shape == (5,) and out.z.shape == (3, 5, 3)
    torch.testing.assert_close(out.elbo, -(out.rate + out.distortion))
    assert (out.distortion > 0).all()


def test_distortion_averages_over_samples():
    model = _vae()
    x = torch.rand(2, 1, 4, 4).bernoulli()
    z = torch.randn(4, 2, 3)
    d = model.distortion_of(x, z)
    by_hand = torch.stack([-model.decoder(z[s]).log_prob(x) for s in range(4)])
    torch.testing.assert_close(d, by_hand)


def test_samples_from_the_marginal_have_the_data_shape():
    assert _vae().sample(5).sample().shape == (5, 1, 4, 4)
