"""VAE(encoder, decoder, marginal): per-example rate and distortion in nats.

    distortion D = -log d(x|z),            z ~ e(z|x)
    rate       R = log e(z|x) - log m(z)   (the analytic KL(e(z|x) || m(z)) when registered)
    ELBO       = -(R + D)

Everything downstream (objectives, evaluators, sweeps, plots) consumes (R, D) only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, kl_divergence

from .components.marginals import Marginal
from .components.multi_rate import conditioned_on


@dataclass
class RateDistortion:
    """Per-example figures of one forward pass (all [B], nats); z is [S, B, d]."""

    rate: Tensor
    distortion: Tensor
    z: Tensor

    @property
    def elbo(self) -> Tensor:
        return -(self.rate + self.distortion)


def analytic_kl(q: Distribution, p: Distribution) -> Tensor | None:
    """KL(q || p) when torch.distributions has it registered, else None."""
    try:
        return kl_divergence(q, p)
    except NotImplementedError:
        return None


class VAE(nn.Module):
    """A latent-variable model given by its encoder e(z|x), decoder d(x|z) and marginal m(z).

    With `analytic_rate=False` the rate is always the Monte Carlo estimate over the same z
    draws as the distortion; by default the analytic KL is used where torch registers one
    (lower variance, same expectation).
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, marginal: Marginal,
                 analytic_rate: bool = True):
        super().__init__()
        self.encoder, self.decoder, self.marginal = encoder, decoder, marginal
        self.analytic_rate = analytic_rate

    @property
    def latent_dim(self) -> int:
        return self.marginal.latent_dim

    def marginal_distribution(self) -> Distribution:
        return self.marginal(self.encoder)

    def distortion_of(self, x: Tensor, z: Tensor) -> Tensor:
        """-log d(x|z) for z [S, B, d] and x [B, ...] -> [S, B]."""
        samples, batch = z.shape[:2]
        dist = self.decoder(z.reshape(samples * batch, -1))
        x_rep = x.unsqueeze(0).expand(samples, *x.shape).reshape(samples * batch, *x.shape[1:])
        return -dist.log_prob(x_rep).reshape(samples, batch)

    def forward(self, x: Tensor, samples: int = 1, beta: Tensor | float | None = None) -> RateDistortion:
        """Rate and distortion per example, each averaged over `samples` draws of z. A multi-rate
        model (beta-gated layers) takes the beta to condition on: a number or one per example."""
        if beta is not None:
            with conditioned_on(self, beta):
                return self.forward(x, samples)
        q = self.encoder(x)
        p = self.marginal_distribution()
        z = q.rsample((samples,))  # [S, B, d]
        distortion = self.distortion_of(x, z).mean(0)
        rate = analytic_kl(q, p) if self.analytic_rate else None
        if rate is None:
            rate = (q.log_prob(z) - p.log_prob(z)).mean(0)
        return RateDistortion(rate=rate, distortion=distortion, z=z)

    def log_importance_weights(self, x: Tensor, samples: int, q: Distribution | None = None,
                               p: Distribution | None = None) -> Tensor:
        """log d(x|z) + log m(z) - log e(z|x) for z ~ e(z|x): [S, B]. Pass q = e(z|x) and
        p = m(z) to reuse them across calls."""
        q = self.encoder(x) if q is None else q
        p = self.marginal_distribution() if p is None else p
        z = q.sample((samples,))
        return -self.distortion_of(x, z) + p.log_prob(z) - q.log_prob(z)

    @torch.no_grad()
    def sample(self, n: int) -> Distribution:
        """The decoder's distribution d(x|z) for n draws z ~ m(z)."""
        z = self.marginal_distribution().sample((n,))
        return self.decoder(z)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def bits_per_dim(nats: float, dims: int) -> float:
    """A display unit: nats per example -> bits per data dimension."""
    return nats / (dims * math.log(2))
