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
from .components.multi_rate import (
    DEFAULT_BETA_RANGE,
    DEFAULT_SLOPE_SCALE,
    beta_gates,
    conditioned_on,
    multi_rate_decoder,
    multi_rate_encoder,
)


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

    Any three modules of these shapes make a model (B examples, S draws, d = latent_dim):

        encoder(x [B, *event_shape])  -> e(z|x), a torch Distribution: batch [B], event [d]
        decoder(z [N, d])             -> d(x|z), a torch Distribution: batch [N], event event_shape
                                         (N = S * B, sample-major: row s * B + b is draw s of example b)
        marginal(encoder)             -> m(z), a torch Distribution with event [d]; a Marginal module
                                         (rdvae.components.Marginal) with `latent_dim`

        model = VAE(MyEncoder(), MyDecoder(), StandardNormal(latent_dim=4))
        out = model(x)            # out.rate, out.distortion: [B] nats; out.elbo = -(R + D)

    Every evaluator, objective and the trainer use only this contract (rdvae.protocols), so such a
    model is measured (evaluate_model, iw_log_likelihood, elbo_surgery) and trained
    (train(config, out, model=model)) like a built-in one; register its parts in a plugin
    (rdvae.registry) to use them from the command line.

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
        """-log d(x|z) for z [S, B, d] and x [B, ...] -> [S, B].

        x is not copied S times where the decoder's distribution offers `log_prob_repeated(x, S)`
        (rdvae's BernoulliLikelihood: its parameters are viewed as [S, B, ...] and x broadcast).
        Any other distribution has batch [S * B] and gets x repeated to [S * B, ...], a view for
        S = 1 and a copy otherwise: torch's log_prob broadcasts from the right, so x [B, ...] cannot
        meet a batch of S * B rows without it."""
        samples, batch = z.shape[:2]
        dist = self.decoder(z.reshape(samples * batch, -1))
        repeated = getattr(dist, "log_prob_repeated", None)
        if repeated is not None:
            return -repeated(x, samples)
        x_rep = x.unsqueeze(0).expand(samples, *x.shape).reshape(samples * batch, *x.shape[1:])
        return -dist.log_prob(x_rep).reshape(samples, batch)

    def forward(self, x: Tensor, samples: int = 1) -> RateDistortion:
        """Rate and distortion per example, each averaged over `samples` draws of z."""
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


class MultiRateVAE(VAE):
    """The Multi-Rate VAE (Bae et al., ICLR 2023): a VAE whose encoder and decoder layers are gated by
    log beta (components.multi_rate), so that one run learns the beta-VAE optimum for every beta of
    a range. Built from any encoder and decoder made of nn.Linear / convolution layers: their layers
    are wrapped in place. Declares the BetaConditioned capability (rdvae.protocols).

    gate_init (open | random-slopes | paper) and gate_slope_scale set the gates; latent_gate puts a
    gated square layer in front of the decoder's trunk (one gate per latent direction) and
    gate_output=False leaves the decoder's logit layer ungated (see multi_rate_decoder). The gates
    standardize log beta by the training range, which the multi-rate objective sets
    (`set_beta_range`) and the weights store.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, marginal: Marginal, analytic_rate: bool = True,
                 gate_init: str = "open", gate_slope_scale: float = DEFAULT_SLOPE_SCALE,
                 latent_gate: bool = True, gate_output: bool = False):
        gates = {"gate_init": gate_init, "gate_slope_scale": gate_slope_scale}
        encoder = multi_rate_encoder(encoder, **gates)
        decoder = multi_rate_decoder(decoder, marginal.latent_dim, latent_gate, gate_output, **gates)
        super().__init__(encoder, decoder, marginal, analytic_rate)

    def conditioned_on(self, beta: Tensor | float):
        """Within the block the model is at `beta`: a positive number, or a [B] tensor (one per example)."""
        return conditioned_on(self, beta)

    def set_beta_range(self, beta_min: float = DEFAULT_BETA_RANGE[0],
                       beta_max: float = DEFAULT_BETA_RANGE[1]) -> None:
        """The log-beta range the gates standardize by (the training range)."""
        for gate in beta_gates(self):
            gate.set_range(beta_min, beta_max)

    def forward(self, x: Tensor, samples: int = 1, beta: Tensor | float | None = None) -> RateDistortion:
        """Rate and distortion per example at `beta` (a number or one per example; None: the current
        conditioning, beta = 1 outside any)."""
        if beta is None:
            return super().forward(x, samples)
        with conditioned_on(self, beta):
            return super().forward(x, samples)


def bits_per_dim(nats: float, dims: int) -> float:
    """A display unit: nats per example -> bits per data dimension."""
    return nats / (dims * math.log(2))
