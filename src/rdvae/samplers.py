"""Where generated samples come from: the marginal m(z), or a Gaussian mixture fitted to the
aggregate posterior q(z) = (1/N) sum_i e(z|x_i) (Lin et al. 2019; Ghosh et al. 2020).

The decoder only ever sees codes from the encoder during training; when q(z) is far from
m(z), decoding draws from m(z) shows it. Fitting a mixture to codes of the training data and
sampling that instead is the aggregate-posterior sampler.

    sampler = AggregatePosteriorSampler(components=10, covariance_type="full").fit(model.encoder, x)
    images = decode_means(model, sampler.sample(64))
"""

from __future__ import annotations

import torch
from sklearn.mixture import GaussianMixture
from torch import Tensor
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
LATENT_SOURCES = ("mean", "sample")


class MarginalSampler:
    """z ~ m(z), the model's marginal (what most code calls the prior)."""

    name = "prior"

    def __init__(self, model):
        self.model = model

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        return self.model.marginal_distribution().sample((n,))


def full_covariances(mixture: GaussianMixture) -> Tensor:
    """The K [d, d] covariance matrices of a fitted scikit-learn mixture, whatever its type."""
    k, d = mixture.means_.shape
    cov = torch.as_tensor(mixture.covariances_, dtype=torch.float64)
    if mixture.covariance_type == "full":
        return cov
    if mixture.covariance_type == "tied":
        return cov.expand(k, d, d).clone()
    if mixture.covariance_type == "diag":
        return torch.diag_embed(cov)
    return cov.reshape(k, 1, 1) * torch.eye(d, dtype=torch.float64)


def mixture_distribution(mixture: GaussianMixture) -> MixtureSameFamily:
    """A fitted scikit-learn GaussianMixture as a torch distribution (float64)."""
    weights = torch.as_tensor(mixture.weights_, dtype=torch.float64)
    means = torch.as_tensor(mixture.means_, dtype=torch.float64)
    return MixtureSameFamily(Categorical(probs=weights, validate_args=False),
                             MultivariateNormal(means, full_covariances(mixture), validate_args=False),
                             validate_args=False)


def mixture_moments(mixture: GaussianMixture) -> tuple[Tensor, Tensor]:
    """Mean and covariance of the whole mixture: sum_k w_k mu_k and
    sum_k w_k (Sigma_k + mu_k mu_k^T) - mu mu^T."""
    w = torch.as_tensor(mixture.weights_, dtype=torch.float64)
    mu = torch.as_tensor(mixture.means_, dtype=torch.float64)
    mean = w @ mu
    second = torch.einsum("k,kij->ij", w, full_covariances(mixture) + mu[:, :, None] * mu[:, None, :])
    return mean, second - torch.outer(mean, mean)


@torch.no_grad()
def posterior_latents(encoder, x: Tensor, source: str = "mean", batch_size: int = 1000) -> Tensor:
    """One code per example: the posterior mean of e(z|x), or one draw z ~ e(z|x)."""
    if source not in LATENT_SOURCES:
        raise ValueError(f"latent source must be one of {LATENT_SOURCES}, got {source!r}")
    device = next(encoder.parameters()).device
    codes = []
    for start in range(0, len(x), batch_size):
        q = encoder(x[start:start + batch_size].to(device))
        codes.append((q.mean if source == "mean" else q.sample()).float().cpu())
    return torch.cat(codes)


class AggregatePosteriorSampler:
    """z from a scikit-learn GaussianMixture fitted to codes of the training data (posterior
    means or posterior samples); components and covariance type configurable."""

    name = "aggregate-posterior"

    def __init__(self, components: int = 10, covariance_type: str = "full", source: str = "mean",
                 seed: int = 0, max_iter: int = 200, reg_covar: float = 1e-6):
        if covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}")
        if source not in LATENT_SOURCES:
            raise ValueError(f"source must be one of {LATENT_SOURCES}, got {source!r}")
        if components < 1:
            raise ValueError(f"the mixture needs at least one component, got {components}")
        self.source = source
        self.mixture = GaussianMixture(components, covariance_type=covariance_type, max_iter=max_iter,
                                       reg_covar=reg_covar, random_state=seed)
        self.distribution: MixtureSameFamily | None = None

    def fit_codes(self, z: Tensor) -> AggregatePosteriorSampler:
        """Fit the mixture to codes z [N, d]."""
        if len(z) < self.mixture.n_components:
            raise ValueError(f"{len(z)} codes cannot fit {self.mixture.n_components} mixture components; "
                             "pass more examples or fewer components")
        self.mixture.fit(z.double().cpu().numpy())
        self.distribution = mixture_distribution(self.mixture)
        return self

    def fit(self, encoder, x: Tensor, batch_size: int = 1000) -> AggregatePosteriorSampler:
        """Fit to the codes of examples x under the encoder (means or draws, per `source`)."""
        return self.fit_codes(posterior_latents(encoder, x, self.source, batch_size))

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        if self.distribution is None:
            raise RuntimeError("fit the aggregate-posterior sampler before sampling from it")
        return self.distribution.sample((n,)).float()


@torch.no_grad()
def decode_means(model, z: Tensor, batch_size: int = 1000) -> Tensor:
    """The decoder's mean E[x|z] for each code (Bernoulli probabilities, Gaussian means): the
    images that sample grids show and FID scores."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model.decoder(z[s:s + batch_size].to(device)).mean.float().cpu()
                      for s in range(0, len(z), batch_size)])
