import pytest
import torch
from tests.helpers import ppca_vae

from rdvae.samplers import (
    AggregatePosteriorSampler,
    MarginalSampler,
    decode_means,
    mixture_moments,
    posterior_latents,
)


def two_clusters(n=4000, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n // 2, 3, generator=g) * torch.tensor([0.5, 1.0, 0.2]) + torch.tensor([2.0, 0.0, -1.0])
    b = torch.randn(n // 2, 3, generator=g) @ torch.tensor([[1.0, 0.3, 0.0], [0.0, 0.5, 0.2], [0, 0, 0.7]])
    return torch.cat([a, b])


def biased_covariance(x):
    centred = x - x.mean(0)
    return centred.T @ centred / len(x)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_sampler_reproduces_the_mean_and_covariance_of_its_fit(covariance_type):
    sampler = AggregatePosteriorSampler(components=3, covariance_type=covariance_type)
    sampler.fit_codes(two_clusters())
    mean, cov = mixture_moments(sampler.mixture)
    torch.manual_seed(1)
    z = sampler.sample(200_000).double()
    assert z.shape == (200_000, 3)
    torch.testing.assert_close(z.mean(0), mean, atol=0.015, rtol=0)
    torch.testing.assert_close(biased_covariance(z), cov, atol=0.03, rtol=0)
    # the torch mixture has the fitted component densities: compare with scikit-learn's score
    x = two_clusters(100, seed=3).double()
    torch.testing.assert_close(sampler.distribution.log_prob(x),
                               torch.as_tensor(sampler.mixture.score_samples(x.numpy())))


def test_full_covariance_fit_matches_the_data_moments():
    """An EM fixed point of a full-covariance mixture keeps the data's mean and (biased)
    covariance exactly, up to the covariance regulariser."""
    x = two_clusters().double()
    sampler = AggregatePosteriorSampler(components=4, covariance_type="full", reg_covar=1e-6).fit_codes(x)
    mean, cov = mixture_moments(sampler.mixture)
    torch.testing.assert_close(mean, x.mean(0), atol=1e-8, rtol=0)
    torch.testing.assert_close(cov, biased_covariance(x) + 1e-6 * torch.eye(3, dtype=torch.float64),
                               atol=1e-8, rtol=0)


def test_posterior_codes_and_decoding():
    model, _, _ = ppca_vae(data_dim=4, latent_dim=2)
    x = torch.randn(50, 4)
    means = posterior_latents(model.encoder, x, "mean", batch_size=7)
    torch.testing.assert_close(means, model.encoder(x).mean)
    draws = posterior_latents(model.encoder, x, "sample")
    assert draws.shape == (50, 2) and not torch.allclose(draws, means)
    sampler = AggregatePosteriorSampler(components=2, source="sample").fit(model.encoder, x)
    z = sampler.sample(5)
    torch.testing.assert_close(decode_means(model, z, batch_size=2), model.decoder(z).mean)
    assert MarginalSampler(model).sample(6).shape == (6, 2)


def test_sampler_errors_say_what_to_do():
    with pytest.raises(ValueError, match="covariance_type"):
        AggregatePosteriorSampler(covariance_type="banded")
    with pytest.raises(ValueError, match="source"):
        AggregatePosteriorSampler(source="mode")
    with pytest.raises(RuntimeError, match="fit"):
        AggregatePosteriorSampler().sample(3)
    with pytest.raises(ValueError, match="fewer components"):
        AggregatePosteriorSampler(components=10).fit_codes(torch.randn(5, 2))
