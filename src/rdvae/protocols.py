"""The contract of a latent-variable model: what every evaluator, objective and the trainer rely on.

Shapes (B examples, S draws of z, d = latent_dim, event_shape the shape of one example):

    encoder(x [B, *event_shape])  -> e(z|x): a torch Distribution, batch [B], event [d]
    decoder(z [N, d])             -> d(x|z): a torch Distribution, batch [N], event event_shape
                                     (N = S * B, sample-major: row s * B + b is draw s of example b)
    marginal(encoder)             -> m(z):   a torch Distribution, event [d] (the encoder is passed for
                                     marginals built from it, such as the VampPrior)

A distribution needs `log_prob`; the encoder's also `rsample` (or `sample` for discrete latents with a
gradient estimator), the marginal's `sample` (for samples) and the decoder's `mean` or `sample` (for
figures). Everything downstream consumes the per-example rate R = log e(z|x) - log m(z) and distortion
D = -log d(x|z) (nats) that `LatentVariableModel.forward` returns; rdvae.VAE implements it for any
encoder, decoder and marginal of the shapes above.

Capabilities are declared by the model's class, never detected by names: a `BetaConditioned` model
(rdvae.MultiRateVAE) can be conditioned on beta, which the multi-rate objective and `eval --betas` use.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from torch import Tensor, nn
from torch.distributions import Distribution

from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .model import RateDistortion


@runtime_checkable
class Encoder(Protocol):
    def __call__(self, x: Tensor) -> Distribution: ...


@runtime_checkable
class Decoder(Protocol):
    def __call__(self, z: Tensor) -> Distribution: ...


@runtime_checkable
class MarginalModule(Protocol):
    latent_dim: int

    def __call__(self, encoder: nn.Module) -> Distribution: ...

    def initialize_from_data(self, x: Tensor) -> None: ...


@runtime_checkable
class LatentVariableModel(Protocol):
    """What evaluators, objectives and the trainer use of a model (rdvae.VAE is one)."""

    encoder: nn.Module
    decoder: nn.Module
    marginal: nn.Module

    def __call__(self, x: Tensor, samples: int = 1) -> RateDistortion: ...

    def marginal_distribution(self) -> Distribution: ...

    def distortion_of(self, x: Tensor, z: Tensor) -> Tensor: ...

    def log_importance_weights(self, x: Tensor, samples: int, q: Distribution | None = None,
                               p: Distribution | None = None) -> Tensor: ...


@runtime_checkable
class BetaConditioned(Protocol):
    """The multi-rate capability: a model whose every output can be conditioned on beta."""

    def conditioned_on(self, beta: Tensor | float) -> contextlib.AbstractContextManager: ...

    def set_beta_range(self, beta_min: float, beta_max: float) -> None: ...


def conditioned(model, beta: Tensor | float | None) -> contextlib.AbstractContextManager:
    """`model` conditioned on beta (a no-op for beta None); a ConfigError when the model does not
    have the capability."""
    if beta is None:
        return contextlib.nullcontext()
    return require_beta_conditioned(model, "evaluating at a given beta").conditioned_on(beta)


def require_beta_conditioned(model, what: str) -> BetaConditioned:
    if not isinstance(model, BetaConditioned):
        raise ConfigError(
            f"{what} needs a beta-conditioned model (rdvae.MultiRateVAE: a family registered with "
            f"model='multi-rate', such as mr-mlp or mr-conv); {type(model).__name__} is not one")
    return model

