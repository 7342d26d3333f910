"""Building blocks: gated linear units (Dauphin et al. 2017) and MLP stacks.

The paper uses h = (W1 x + b1) * sigmoid(W2 x + b2) in every layer. A gated layer is one
linear (or conv) map to twice the width followed by `F.glu`, which computes exactly that.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

ACTIVATIONS = ("glu", "relu", "elu", "tanh")
MLP_HIDDEN = (512, 256)            # the MLP encoder's layers; MLP decoders mirror them
MADE_HIDDEN = (640, 640, 640)      # the MADE of every IAF / autoregressive-flow step (appendix F)


class Gated(nn.Module):
    """Wraps a layer with 2*C outputs along `dim` and returns a * sigmoid(b) (C outputs)."""

    def __init__(self, layer: nn.Module, dim: int = 1):
        super().__init__()
        self.layer, self.dim = layer, dim

    def forward(self, x: Tensor) -> Tensor:
        return F.glu(self.layer(x), dim=self.dim)


def gated_linear(in_features: int, out_features: int) -> Gated:
    return Gated(nn.Linear(in_features, 2 * out_features), dim=-1)


def gated_conv2d(in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding="same") -> Gated:
    return Gated(nn.Conv2d(in_ch, 2 * out_ch, kernel, stride=stride, padding=padding), dim=1)


def gated_conv_transpose2d(
    in_ch: int, out_ch: int, kernel: int, stride: int, padding: int, output_padding: int = 0
) -> Gated:
    conv = nn.ConvTranspose2d(
        in_ch, 2 * out_ch, kernel, stride=stride, padding=padding, output_padding=output_padding
    )
    return Gated(conv, dim=1)


def check_paper_conv(event_shape, activation: str, what: str) -> tuple[int, int, int]:
    """(channels, height, width) of images the paper's conv stacks accept: sides divisible by 4
    (two stride-2 layers), gated units."""
    channels, height, width = event_shape
    if height % 4 or width % 4:
        raise ValueError(f"the {what} needs height and width divisible by 4, got {tuple(event_shape)}")
    if activation != "glu":
        raise ValueError(f"the paper's {what} uses gated units (activation='glu')")
    return channels, height, width


def scaled_channels(channels: int, width: float) -> int:
    """A paper channel count scaled by `width` (> 0), at least 1."""
    if not width > 0:
        raise ValueError(f"conv_width must be > 0 (1.0 is the paper's stack), got {width}")
    return max(1, round(channels * width))


def dense(in_features: int, out_features: int, activation: str) -> nn.Module:
    """One hidden layer: a gated unit, or a linear map followed by a pointwise nonlinearity."""
    if activation == "glu":
        return gated_linear(in_features, out_features)
    pointwise = {"relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh}
    if activation not in pointwise:
        raise ValueError(f"unknown activation {activation!r}; choose one of {ACTIVATIONS}")
    return nn.Sequential(nn.Linear(in_features, out_features), pointwise[activation]())


def mlp(sizes: Sequence[int], activation: str = "glu") -> nn.Sequential:
    """Hidden layers sizes[0] -> sizes[1] -> ... -> sizes[-1], each with the activation."""
    return nn.Sequential(*(dense(a, b, activation) for a, b in zip(sizes[:-1], sizes[1:], strict=True)))
