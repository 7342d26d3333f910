import torch
from torch.distributions import Categorical, MixtureSameFamily

from rdvae.components import DiagonalGaussianMixture, diagonal_normal, pairwise_log_prob
from rdvae.components.distributions import gaussian_pairwise_log_prob


def test_pairwise_log_prob_matches_broadcast_normal():
    loc, scale = torch.randn(6, 4), torch.rand(6, 4) + 0.1
    z = torch.randn(9, 4)
    expected = diagonal_normal(loc, scale).log_prob(z[:, None, :])
    torch.testing.assert_close(gaussian_pairwise_log_prob(z, loc, scale), expected, atol=1e-4, rtol=1e-5)


def test_pairwise_log_prob_keeps_precision_for_small_scales():
    loc = torch.randn(5, 64)
    scale = torch.full((5, 64), 1e-3)
    z = loc[:3] + 1e-3 * torch.randn(3, 64)
    exact = torch.distributions.Normal(loc.double(), scale.double()).log_prob(
        z.double()[:, None, :]).sum(-1)
    got = gaussian_pairwise_log_prob(z, loc, scale).double()
    close = exact > -1e3
    assert (got - exact)[close].abs().max() < 0.01


def test_mixture_log_prob_matches_torch_mixture():
    logits, loc, scale = torch.randn(5), torch.randn(5, 3), torch.rand(5, 3) + 0.2
    ours = DiagonalGaussianMixture(logits, loc, scale)
    ref = MixtureSameFamily(Categorical(logits=logits), diagonal_normal(loc, scale))
    z = torch.randn(2, 7, 3)
    torch.testing.assert_close(ours.log_prob(z), ref.log_prob(z), atol=1e-5, rtol=1e-5)


def test_mixture_samples_follow_the_mixture():
    logits = torch.tensor([0.0, 1.0])
    loc = torch.tensor([[-3.0, 0.0], [2.0, 1.0]])
    scale = torch.tensor([[0.5, 1.0], [1.0, 0.2]])
    mix = DiagonalGaussianMixture(logits, loc, scale)
    s = mix.sample((200_000,))
    torch.testing.assert_close(s.mean(0), mix.mean, atol=0.02, rtol=0)


def test_pairwise_generic_path_for_non_gaussian():
    q = torch.distributions.Independent(torch.distributions.Laplace(torch.randn(4, 2), torch.ones(4, 2)), 1)
    z = torch.randn(3, 2)
    assert pairwise_log_prob(q, z).shape == (3, 4)
