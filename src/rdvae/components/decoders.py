"""Decoders d(x|z): a trunk that maps z to per-dimension parameters, then a likelihood.

Simple decoder of the paper (appendix F.2): six gated transposed convolutions from a 1x1x64
input, then a linear Conv(1, 5) giving Bernoulli logits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Bernoulli, Distribution, Independent

from .layers import MLP_HIDDEN, check_paper_conv, gated_conv2d, gated_conv_transpose2d, mlp, scaled_channels


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


class _BernoulliLogProb(torch.autograd.Function):
    """sum over the event of log Bernoulli(x; sigmoid(l)) = logsigmoid(l) + (x - 1) l, for logits
    [S, B, D] and x [B, D] broadcast (never copied): [S, B].

    The forward is torch's `-binary_cross_entropy_with_logits` term, (1 - x) l - logsigmoid(l)
    negated, in two passes (logsigmoid, then one multiply-add) instead of four; the backward is
    BCE's own, (sigmoid(l) - x) times the incoming gradient, so values and gradients are those of
    torch.distributions.Bernoulli (bit for bit on the CPU: benchmarks/train_step.py checks it).
    """

    @staticmethod
    def forward(ctx, logits: Tensor, x: Tensor) -> Tensor:
        ctx.save_for_backward(logits, x)
        return torch.addcmul(F.logsigmoid(logits), x - 1, logits).sum(-1)

    @staticmethod
    def backward(ctx, grad: Tensor):
        logits, x = ctx.saved_tensors
        grad = grad.neg().unsqueeze(-1)
        grad_logits = grad_x = None
        if ctx.needs_input_grad[0]:
            grad_logits = (torch.sigmoid(logits) - x).mul_(grad).sum_to_size(logits.shape)
        if ctx.needs_input_grad[1]:
            grad_x = (logits * grad).neg_().sum_to_size(x.shape)
        return grad_logits, grad_x


class BernoulliLikelihood(Independent):
    """Independent Bernoulli over the last `event_dims` dimensions of `logits`: the distribution a
    BernoulliDecoder returns. A torch Independent(Bernoulli) in every respect (.sample(), .mean,
    .base_dist.probs / .logits) whose log_prob runs in two passes, and which also evaluates x
    [B, *event] against a batch of S * B rows (S draws per example, sample-major) without copying x
    S times: `log_prob_repeated(x, S)`, which VAE.distortion_of uses."""

    def __init__(self, logits: Tensor, event_dims: int):
        super().__init__(Bernoulli(logits=logits, validate_args=False), event_dims, validate_args=False)

    @property
    def logits(self) -> Tensor:
        return self.base_dist.logits

    def log_prob(self, value: Tensor) -> Tensor:
        batch = self.batch_shape
        x = value.reshape(*value.shape[:value.dim() - len(self.event_shape)], -1)
        return _BernoulliLogProb.apply(self.logits.reshape(*batch, -1), x)

    def log_prob_repeated(self, x: Tensor, samples: int) -> Tensor:
        """log d(x_b | z_{s,b}) for x [B, *event] and this distribution's batch [S * B]: [S, B]."""
        examples = len(x)
        logits = self.logits.reshape(samples, examples, -1)
        return _BernoulliLogProb.apply(logits, x.reshape(examples, -1))


class BernoulliDecoder(nn.Module):
    """d(x|z) = prod_i Bernoulli(x_i; sigmoid(logit_i(z))), a BernoulliLikelihood (log-likelihood
    from the logits, never log(sigmoid))."""

    def __init__(self, trunk: nn.Module, event_shape: Sequence[int]):
        super().__init__()
        self.trunk, self.event_shape = trunk, tuple(event_shape)

    def forward(self, z: Tensor) -> Distribution:
        return BernoulliLikelihood(self.trunk(z).float(), len(self.event_shape))


def mlp_decoder(event_shape, latent_dim: int, hidden=MLP_HIDDEN[::-1], activation="glu") -> BernoulliDecoder:
    return BernoulliDecoder(MLPDecoderTrunk(latent_dim, hidden, event_shape, activation), event_shape)


def simple_deconv_decoder(event_shape, latent_dim: int, activation="glu", conv_width: float = 1.0
                          ) -> BernoulliDecoder:
    return BernoulliDecoder(SimpleDeconvTrunk(latent_dim, event_shape, activation, conv_width), event_shape)


# The Gaussian decoder (fixed, learned, optimal or per-dimension variance) lives in
# gaussian_decoders.py, which builds on the trunks above.
