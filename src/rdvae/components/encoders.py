"""Encoders e(z|x): a trunk that maps x to features, then a distribution head.

Simple encoder of the paper (appendix F.1): input scaled to [-1, 1], five gated convolutions,
then mean = Linear(d) and variance = Softplus(Linear(d)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution

from .distributions import diagonal_normal
from .layers import MLP_HIDDEN, check_paper_conv, gated_conv2d, mlp, scaled_channels

VARIANCE_FLOOR = 1e-7


class MLPTrunk(nn.Module):
    """Flattens x (scaled to [-1, 1]) and applies a stack of hidden layers."""

    def __init__(self, event_shape: Sequence[int], hidden: Sequence[int], activation: str = "glu"):
        super().__init__()
        self.out_features = hidden[-1]
        self.net = mlp([math.prod(event_shape), *hidden], activation)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(2.0 * x.flatten(1) - 1.0)


class SimpleConvTrunk(nn.Module):
    """Conv(32,5,1) Conv(32,5,2) Conv(64,5,1) Conv(64,5,2) Conv(256,H/4,valid), all gated.

    For 28x28 inputs this is exactly the paper's stack (the last kernel is 7); other sizes
    divisible by 4 use a last kernel of H/4 so the output is 1x1x256. `conv_width` scales every
    channel count (0.25 gives 8-8-16-16-64: the same stack at 1/16 of the cost, for a CPU).
    """

    def __init__(self, event_shape: Sequence[int], activation: str = "glu", conv_width: float = 1.0):
        super().__init__()
        channels, height, width = check_paper_conv(event_shape, activation, "conv encoder")
        c32, c64, c256 = (scaled_channels(c, conv_width) for c in (32, 64, 256))
        self.out_features = c256
        self.net = nn.Sequential(
            gated_conv2d(channels, c32, 5, 1),
            gated_conv2d(c32, c32, 5, 2, padding=2),
            gated_conv2d(c32, c64, 5, 1),
            gated_conv2d(c64, c64, 5, 2, padding=2),
            gated_conv2d(c64, c256, (height // 4, width // 4), 1, padding=0),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(2.0 * x - 1.0).flatten(1)


UNIT_VARIANCE_SHIFT = math.log(math.e - 1.0)   # softplus(UNIT_VARIANCE_SHIFT) = 1


class GaussianEncoder(nn.Module):
    """e(z|x) = N(mu(x), diag(var(x))), mu = Linear(h), var = Softplus(Linear(h) [+ shift])."""

    def __init__(self, trunk: nn.Module, latent_dim: int):
        super().__init__()
        self.trunk, self.latent_dim = trunk, latent_dim
        self.loc = nn.Linear(trunk.out_features, latent_dim)
        self.raw_variance = nn.Linear(trunk.out_features, latent_dim)
        self.register_buffer("variance_shift", None)   # see centre_at_unit_variance

    def centre_at_unit_variance(self) -> GaussianEncoder:
        """Add softplus^-1(1) before the softplus, so that the outputs (mu, raw) = (0, 0) are
        N(0, I), the standard marginal. Multi-rate encoders need this: their gates scale the
        outputs toward 0, and a closed gate must mean "this dimension sends nothing" (as the
        log-variance output of the paper's encoders does), not a variance of softplus(0) = 0.69,
        which costs 0.03 nats of rate per dimension at every x. Kept as a buffer, so a
        checkpoint records it."""
        self.variance_shift = torch.tensor(UNIT_VARIANCE_SHIFT)
        return self

    def forward(self, x: Tensor) -> Distribution:
        h = self.trunk(x)
        loc = self.loc(h).float()
        raw = self.raw_variance(h).float()
        if self.variance_shift is not None:
            raw = raw + self.variance_shift
        variance = F.softplus(raw) + VARIANCE_FLOOR
        return diagonal_normal(loc, variance.sqrt())


def mlp_encoder(event_shape, latent_dim: int, hidden=MLP_HIDDEN, activation="glu") -> GaussianEncoder:
    return GaussianEncoder(MLPTrunk(event_shape, hidden, activation), latent_dim)


def simple_conv_encoder(event_shape, latent_dim: int, activation="glu", conv_width: float = 1.0
                        ) -> GaussianEncoder:
    return GaussianEncoder(SimpleConvTrunk(event_shape, activation, conv_width), latent_dim)


