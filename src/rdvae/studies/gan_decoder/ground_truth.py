"""The ground-truth model of the GAN-as-decoder experiment ([Re] VAE approximation error, section 4): the
generator g0 of a trained GAN with Gaussian observation noise,

    p*(z, x) = N(z; 0, I) N(x; g0(z), sigma^2 I),

frozen and in eval mode (BatchNorm's running statistics: one fixed function). Stages 1 and 2 train on
fresh draws of it and every score is taken on held-out draws of it (fixed seeds), as the [Re] code
does; real images train g0 only. The noise is rdvae's Gaussian decoder (rdvae.components), so a draw
x = g0(z) + sigma eps is the decoder's own sample.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import torch
from torch import Tensor, nn

from rdvae.components import GaussianDecoder, StandardNormal
from rdvae.device import seeded
from rdvae.presets import build_model

from .dcgan import DCGANGenerator


class Draws(NamedTuple):
    """n draws of the ground truth: z ~ N(0, I) [n, d], the noise-free images g0(z) and the observations
    x = g0(z) + sigma eps, eps ~ N(0, I) (both [n, C, H, W], on the ground truth's device)."""

    z: Tensor
    means: Tensor
    x: Tensor


class GroundTruth(nn.Module):
    """p*(z, x) = N(z; 0, I) N(x; g0(z), sigma^2 I) for a generator g0 (copied, frozen, eval mode)."""

    def __init__(self, generator: DCGANGenerator, sigma: float):
        super().__init__()
        self.decoder = GaussianDecoder(copy.deepcopy(generator), generator.event_shape, sigma, "fixed")
        self.marginal = StandardNormal(generator.latent_dim)
        self.requires_grad_(False)
        self.eval()

    @property
    def generator(self) -> DCGANGenerator:
        return self.decoder.trunk

    @property
    def sigma(self) -> float:
        return self.decoder.scale

    @property
    def latent_dim(self) -> int:
        return self.marginal.latent_dim

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self.decoder.event_shape

    def train(self, mode: bool = True) -> GroundTruth:
        """Always eval mode: the ground truth is one fixed function."""
        return super().train(False)

    @torch.no_grad()
    def draw(self, n: int, seed: int | None = None) -> Draws:
        """n draws (z, g0(z), x), from torch's random stream or, given a seed, from their own stream
        (the caller's stream left where it was)."""
        if seed is not None:
            with seeded(seed, self.marginal.loc.device):
                return self.draw(n)
        z = self.marginal().sample((n,))
        likelihood = self.decoder(z)
        return Draws(z, likelihood.mean, likelihood.sample())


def stage_model(truth: GroundTruth, ngf: int, ndf: int, seed: int = 0):
    """The VAE that stage 1 starts from (family `dcgan`): the ground truth's decoder (its generator's
    weights, the same sigma) and a fresh encoder, initialised under `seed`."""
    with seeded(seed):
        model = build_model("dcgan", truth.event_shape, truth.latent_dim, ngf=ngf, ndf=ndf, sigma=truth.sigma)
    model.decoder.trunk.load_state_dict(truth.generator.state_dict())
    return model
