"""Training objectives over per-example rate R and distortion D (nats).

    beta        mean(D) + beta * w(t) * mean(R)         (beta = 1: the negative ELBO)
    target rate mean(D) + |sigma - mean(R)|             (Alemi et al., sec. 3)
    free bits   mean(D) + beta * w(t) * max(lambda, mean(R))

w(t) is the KL-annealing weight, a linear ramp from 0 to 1 over `anneal_steps` optimizer
steps (w = 1 when anneal_steps = 0). Free bits here act on the total rate of the minibatch
(nats per example), so that objectives need nothing but (R, D).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


class ObjectiveError(ValueError):
    """An invalid objective setting, with what was given and what is allowed."""


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ObjectiveError(f"{name} must be a positive finite number, got {value!r}")
    return value


def _non_negative(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ObjectiveError(f"{name} must be a finite number >= 0 nats, got {value!r}")
    return value


@dataclass(frozen=True)
class KLAnnealing:
    """Linear warm-up of the rate weight over the first `steps` optimizer steps."""

    steps: int = 0

    def __post_init__(self):
        if int(self.steps) != self.steps or self.steps < 0:
            raise ObjectiveError(f"kl_anneal_steps must be an integer >= 0, got {self.steps!r}")

    def weight(self, step: int) -> float:
        return 1.0 if self.steps == 0 else min(1.0, step / self.steps)


@dataclass(frozen=True)
class BetaObjective:
    beta: float = 1.0
    annealing: KLAnnealing = KLAnnealing()

    def __post_init__(self):
        _positive("beta", self.beta)

    def __call__(self, rate: Tensor, distortion: Tensor, step: int = 0) -> Tensor:
        return distortion.mean() + self.beta * self.annealing.weight(step) * rate.mean()

    def describe(self) -> str:
        return f"D + {self.beta:g} R"


@dataclass(frozen=True)
class TargetRateObjective:
    target_rate: float

    def __post_init__(self):
        _non_negative("target rate sigma", self.target_rate)

    def __call__(self, rate: Tensor, distortion: Tensor, step: int = 0) -> Tensor:
        return distortion.mean() + (self.target_rate - rate.mean()).abs()

    def describe(self) -> str:
        return f"D + |{self.target_rate:g} - R|"


@dataclass(frozen=True)
class FreeBitsObjective:
    free_bits: float
    beta: float = 1.0
    annealing: KLAnnealing = KLAnnealing()

    def __post_init__(self):
        _non_negative("free bits lambda", self.free_bits)
        _positive("beta", self.beta)

    def __call__(self, rate: Tensor, distortion: Tensor, step: int = 0) -> Tensor:
        clamped = torch.clamp(rate.mean(), min=self.free_bits)
        return distortion.mean() + self.beta * self.annealing.weight(step) * clamped

    def describe(self) -> str:
        return f"D + {self.beta:g} max({self.free_bits:g}, R)"


def make_objective(beta: float | None = 1.0, target_rate: float | None = None,
                   free_bits: float | None = None, kl_anneal_steps: int = 0):
    """The objective a run config asks for; target rate excludes beta, annealing and free bits."""
    annealing = KLAnnealing(int(kl_anneal_steps or 0))
    if target_rate is not None:
        if free_bits is not None or annealing.steps:
            raise ObjectiveError("target_rate cannot be combined with free_bits or KL annealing")
        return TargetRateObjective(target_rate)
    beta = 1.0 if beta is None else beta
    if free_bits is not None:
        return FreeBitsObjective(free_bits, beta, annealing)
    return BetaObjective(beta, annealing)
