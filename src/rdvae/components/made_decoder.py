"""An autoregressive decoder that is cheap on a CPU: a MADE over the pixels conditioned on z.

    d(x|z) = prod_i Bernoulli(x_i; sigmoid(l_i(x_<i, z)))      (raster order)

The network is a MADE (Germain et al. 2015) whose every layer also receives an unmasked linear
map of z, as in the conditional MADEs of IAF and of the VLAE (Chen et al. 2017):

    h_1 = relu(M_1 x + A_1 z + b_1),  h_k = relu(M_k h_{k-1} + A_k z + b_k),  l = M_out h_K + A_out z + b

so l_i sees z and the pixels before i and nothing else. log d(x|z) is one pass of a few dense
matrix products (no convolutions), which is why it trains many times faster than a PixelCNN on a
CPU; sampling is one pass per pixel. benchmarks/ar_decoders.py measures it against narrow
PixelCNNs at equal CPU time (the PixelCNN reached the lower NLL, so the broken-elbo `cpu` scale
uses that; docs/results/broken-elbo.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution, constraints

from .flows import MaskedLinear, made_degrees

MADE_DECODER_HIDDEN = (500, 500)


class ConditionalMADE(nn.Module):
    """Logits of `features` binary variables in their natural order, each from the variables
    before it and from a condition vector z: forward(x [N, D], z [N, k]) -> [N, D]."""

    def __init__(self, features: int, condition_dim: int, hidden: Sequence[int] = MADE_DECODER_HIDDEN):
        super().__init__()
        hidden = tuple(int(h) for h in hidden)
        if features < 2 or not hidden or min(hidden) < 1:
            raise ValueError(f"a conditional MADE needs >= 2 features and hidden layers of >= 1 unit, got "
                             f"features={features}, hidden={hidden}")
        degrees = made_degrees(features, hidden, torch.arange(1, features + 1))
        self.layers = nn.ModuleList(
            MaskedLinear(len(d_in), len(d_out), d_out[:, None] >= d_in[None, :])
            for d_in, d_out in zip(degrees[:-1], degrees[1:], strict=True))
        self.out = MaskedLinear(hidden[-1], features, degrees[0][:, None] > degrees[-1][None, :])
        self.conditions = nn.ModuleList(nn.Linear(condition_dim, width, bias=False)
                                        for width in (*hidden, features))
        self.features = features

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        h = x
        for layer, condition in zip(self.layers, self.conditions, strict=False):
            h = F.relu(layer(h) + condition(z))
        return self.out(h) + self.conditions[-1](z)


class MADEBernoulli(Distribution):
    """d(x|z) of a ConditionalMADE: batch shape [N] (one per z), event shape the image's.
    log_prob(x) is one pass; sample() is exact ancestral sampling, one pass per pixel."""

    arg_constraints = {}
    has_rsample = False

    def __init__(self, network: ConditionalMADE, z: Tensor, event_shape: Sequence[int]):
        self.network, self.z = network, z
        super().__init__(z.shape[:1], torch.Size(event_shape), validate_args=False)

    @property
    def support(self):
        return constraints.independent(constraints.boolean, len(self.event_shape))

    def log_prob(self, value: Tensor) -> Tensor:
        if value.shape[:-len(self.event_shape)] != self.batch_shape:
            raise ValueError(f"MADE decoder log_prob needs one image per z: batch {tuple(self.batch_shape)}, "
                             f"got images of shape {tuple(value.shape)}")
        x = value.reshape(len(value), -1).to(self.z.dtype)
        logits = self.network(x, self.z).float()
        return -F.binary_cross_entropy_with_logits(logits, x.float(), reduction="none").sum(-1)

    @torch.no_grad()
    def sample(self, sample_shape=()) -> Tensor:
        shape = torch.Size(sample_shape)
        z = self.z.unsqueeze(0).expand(shape.numel(), *self.z.shape).reshape(-1, self.z.shape[-1])
        x = torch.zeros(len(z), self.network.features, device=z.device, dtype=z.dtype)
        for i in range(self.network.features):
            logits = self.network(x, z)[:, i]
            x[:, i] = torch.bernoulli(torch.sigmoid(logits.float())).to(x.dtype)
        return x.reshape(*shape, *self.batch_shape, *self.event_shape)


class MADEDecoder(nn.Module):
    """z -> MADEBernoulli: the conditional-MADE autoregressive decoder for binary data."""

    def __init__(self, event_shape: Sequence[int], latent_dim: int,
                 hidden: Sequence[int] = MADE_DECODER_HIDDEN):
        super().__init__()
        self.event_shape = tuple(event_shape)
        self.network = ConditionalMADE(math.prod(self.event_shape), latent_dim, hidden)

    def forward(self, z: Tensor) -> MADEBernoulli:
        return MADEBernoulli(self.network, z, self.event_shape)
