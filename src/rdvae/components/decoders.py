"""Decoders d(x|z): a trunk that maps z to per-dimension parameters, then a likelihood.

Simple decoder of the paper (appendix F.2): six gated transposed convolutions from a 1x1x64
input, then a linear Conv(1, 5) giving Bernoulli logits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn
from torch.distributions import Bernoulli, Distribution, Independent

from .layers import check_paper_conv, gated_conv2d, gated_conv_transpose2d, mlp, scaled_channels


class MLPDecoderTrunk(nn.Module):
    """z -> hidden layers -> Linear(prod(event_shape)), reshaped to the event shape."""

    def __init__(self, latent_dim: int, hidden: Sequence[int], event_shape: Sequence[int],
                 activation: str = "glu"):
        super().__init__()
        self.event_shape = tuple(event_shape)
        self.net = nn.Sequential(
            mlp([latent_dim, *hidden], activation), nn.Linear(hidden[-1], math.prod(event_shape))
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).reshape(*z.shape[:-1], *self.event_shape)


class SimpleDeconvTrunk(nn.Module):
    """Deconv(64,H/4,valid) Deconv(64,5,1) Deconv(64,5,2) Deconv(32,5,1) Deconv(32,5,2)
    Deconv(32,4,1), all gated, then a linear Conv(C,5,1). Stride-1 'same' transposed
    convolutions are convolutions with a flipped kernel, so they are written as Conv2d.
    `conv_width` scales every hidden channel count (as in SimpleConvTrunk)."""

    def __init__(self, latent_dim: int, event_shape: Sequence[int], activation: str = "glu",
                 conv_width: float = 1.0):
        super().__init__()
        channels, height, width = check_paper_conv(event_shape, activation, "deconv decoder")
        self.event_shape = tuple(event_shape)
        c32, c64 = scaled_channels(32, conv_width), scaled_channels(64, conv_width)
        self.net = nn.Sequential(
            gated_conv_transpose2d(latent_dim, c64, (height // 4, width // 4), 1, 0),
            gated_conv2d(c64, c64, 5),
            gated_conv_transpose2d(c64, c64, 5, 2, padding=2, output_padding=1),
            gated_conv2d(c64, c32, 5),
            gated_conv_transpose2d(c32, c32, 5, 2, padding=2, output_padding=1),
            nn.ZeroPad2d((1, 2, 1, 2)),  # TF-style 'same' padding for the even kernel
            gated_conv2d(c32, c32, 4, padding=0),
            nn.Conv2d(c32, channels, 5, padding="same"),
        )

    def forward(self, z: Tensor) -> Tensor:
        lead = z.shape[:-1]
        out = self.net(z.reshape(-1, z.shape[-1], 1, 1))
        return out.reshape(*lead, *self.event_shape)


class BernoulliDecoder(nn.Module):
    """d(x|z) = prod_i Bernoulli(x_i; sigmoid(logit_i(z))); distortion via BCE with logits."""

    def __init__(self, trunk: nn.Module, event_shape: Sequence[int]):
        super().__init__()
        self.trunk, self.event_shape = trunk, tuple(event_shape)

    def forward(self, z: Tensor) -> Distribution:
        logits = self.trunk(z).float()
        base = Bernoulli(logits=logits, validate_args=False)
        return Independent(base, len(self.event_shape), validate_args=False)


def mlp_decoder(event_shape, latent_dim: int, hidden=(256, 512), activation="glu") -> BernoulliDecoder:
    return BernoulliDecoder(MLPDecoderTrunk(latent_dim, hidden, event_shape, activation), event_shape)


def simple_deconv_decoder(event_shape, latent_dim: int, activation="glu", conv_width: float = 1.0
                          ) -> BernoulliDecoder:
    return BernoulliDecoder(SimpleDeconvTrunk(latent_dim, event_shape, activation, conv_width), event_shape)


# The Gaussian decoder (fixed, learned, optimal or per-dimension variance) lives in
# gaussian_decoders.py, which builds on the trunks above.
