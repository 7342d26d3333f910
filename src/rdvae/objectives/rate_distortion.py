"""Training objectives over per-example rate R and distortion D (nats).

    beta        mean(D) + beta * w(t) * mean(R)         (beta = 1: the negative ELBO)
    target rate mean(D) + |sigma - mean(R)|             (Alemi et al., sec. 3)
    free bits   mean(D) + beta * w(t) * max(lambda, mean(R))

w(t) is the KL-annealing weight, a linear ramp from 0 to 1 over `anneal_steps` optimizer
steps (w = 1 when anneal_steps = 0). Free bits here act on the total rate of the minibatch
(nats per example), so that objectives need nothing but (R, D).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..registry import register_objective
from .base import ObjectiveError, RateDistortionObjective, number


@dataclass(frozen=True)
class KLAnnealing:
    """Linear warm-up of the rate weight over the first `steps` optimizer steps."""

    steps: int = 0

    def __post_init__(self):
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise ObjectiveError(f"kl_anneal_steps must be an integer >= 0, got {self.steps!r}")

    def weight(self, step: int) -> float:
        return 1.0 if self.steps == 0 else min(1.0, step / self.steps)


@dataclass(frozen=True)
class BetaObjective(RateDistortionObjective):
    beta: float = 1.0
    annealing: KLAnnealing = KLAnnealing()

    def __post_init__(self):
        number("beta", self.beta)

    def loss(self, rate: Tensor, distortion: Tensor, step: int = 0) -> Tensor:
        return distortion.mean() + self.beta * self.annealing.weight(step) * rate.mean()

    def describe(self) -> str:
        return f"D + {self.beta:g} R"


@dataclass(frozen=True)
class TargetRateObjective(RateDistortionObjective):
    target_rate: float

    def __post_init__(self):
        number("target_rate (sigma, nats)", self.target_rate, strict=False)

    def loss(self, rate: Tensor, distortion: Tensor, step: int = 0) -> Tensor:
        return distortion.mean() + (self.target_rate - rate.mean()).abs()

    def describe(self) -> str:
        return f"D + |{self.target_rate:g} - R|"


@dataclass(frozen=True)
class FreeBitsObjective(RateDistortionObjective):
    free_bits: float
    beta: float = 1.0
    annealing: KLAnnealing = KLAnnealing()

    def __post_init__(self):
        number("free_bits (lambda, nats)", self.free_bits, strict=False)
        number("beta", self.beta)

    def loss(self, rate: Tensor, distortion: Tensor, step: int = 0) -> Tensor:
        clamped = torch.clamp(rate.mean(), min=self.free_bits)
        return distortion.mean() + self.beta * self.annealing.weight(step) * clamped

    def describe(self) -> str:
        return f"D + {self.beta:g} max({self.free_bits:g}, R)"


@register_objective("beta", aliases=("rate-distortion",))
def beta_objective(beta: float = 1.0, kl_anneal_steps: int = 0) -> BetaObjective:
    """D + beta R (beta = 1: the negative ELBO), the rate weight ramped up over kl_anneal_steps."""
    return BetaObjective(beta, KLAnnealing(kl_anneal_steps))


@register_objective("target-rate")
def target_rate_objective(target_rate: float) -> TargetRateObjective:
    """D + |sigma - R|: the rate steered to target_rate nats."""
    return TargetRateObjective(target_rate)


@register_objective("free-bits")
def free_bits_objective(free_bits: float, beta: float = 1.0, kl_anneal_steps: int = 0) -> FreeBitsObjective:
    """D + beta max(lambda, R): no pressure on rates below free_bits nats."""
    return FreeBitsObjective(free_bits, beta, KLAnnealing(kl_anneal_steps))
