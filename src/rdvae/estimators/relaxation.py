"""Straight-through Gumbel-softmax (Jang, Gu & Poole 2017; Maddison et al. 2017): biased, for
comparison only.

Forward: the hard sample (a true draw from e(z|x)); backward: the gradient of the relaxed
sample y = softmax((logits + g) / tau) (for bits: sigmoid((a + logistic noise) / tau)). The
bias shrinks as tau -> 0 while the variance grows, so tau is annealed:

    tau(step) = max(tau_min, tau_0 * exp(-rate * step))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Distribution, OneHotCategorical

from .antithetic import bernoulli_logits
from .estimate import Estimate


@dataclass(frozen=True)
class TemperatureSchedule:
    """Exponential annealing of the Gumbel-softmax temperature, floored at `minimum`."""

    initial: float = 1.0
    minimum: float = 0.1
    rate: float = 1e-4

    def __post_init__(self):
        if not (self.initial > 0 and self.minimum > 0 and self.rate >= 0):
            raise ValueError(
                f"temperature schedule needs initial > 0, minimum > 0 and rate >= 0, got {self}")

    def __call__(self, step: int) -> float:
        return max(self.minimum, self.initial * math.exp(-self.rate * step))


def relaxed_straight_through(q: Distribution, temperature: float, samples: int) -> Tensor:
    """z [S, B, d] equal to hard draws from q, differentiable through the relaxed draws."""
    if isinstance(q, OneHotCategorical):
        logits = q.logits
        u = torch.rand((samples, *logits.shape), device=logits.device, dtype=logits.dtype)
        u = u.clamp(1e-20, 1.0 - 1e-7)
        gumbel = -torch.log(-torch.log(u))
        soft = torch.softmax((logits + gumbel) / temperature, dim=-1)
        hard = F.one_hot(soft.argmax(-1), logits.shape[-1]).to(logits.dtype)
    else:
        logits = bernoulli_logits(q, "Gumbel-softmax")
        u = torch.rand((samples, *logits.shape), device=logits.device, dtype=logits.dtype)
        u = u.clamp(1e-20, 1.0 - 1e-7)
        logistic = torch.log(u) - torch.log1p(-u)
        soft = torch.sigmoid((logits + logistic) / temperature)
        hard = (logits + logistic > 0).to(logits.dtype)
    return hard + (soft - soft.detach())   # exactly hard in the forward pass: (soft - soft) is 0


def gumbel_straight_through(q: Distribution, f: Callable[[Tensor], Tensor], passes: int = 1,
                            temperature: float = 1.0, **_) -> Estimate:
    """f at `passes` straight-through draws, averaged; the gradient flows through f into z."""
    z = relaxed_straight_through(q, temperature, passes)
    return Estimate(f(z).mean(0), z.detach())
