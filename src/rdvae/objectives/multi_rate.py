"""The Multi-Rate VAE objective (Bae et al., ICLR 2023, eq. 11 and Algorithm 1).

One beta per example, log beta ~ Uniform[log a, log b] (default a = 0.01, b = 10), and

    loss = mean_n (D_n + beta_n R_n)

where the model is conditioned on the same beta_n (the BetaConditioned capability,
rdvae.protocols), so a single run learns the beta-VAE optimum for every beta in [a, b]: the whole
rate-distortion curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..components.multi_rate import DEFAULT_BETA_RANGE
from ..protocols import BetaConditioned, require_beta_conditioned
from ..registry import register_objective
from .base import Objective, ObjectiveError, StepResult, number


@dataclass(frozen=True)
class MultiRateObjective(Objective):
    requires = BetaConditioned   # the capability the model must declare (checked by the config)

    beta_min: float = DEFAULT_BETA_RANGE[0]
    beta_max: float = DEFAULT_BETA_RANGE[1]

    def __post_init__(self):
        lo, hi = number("beta_min", self.beta_min), number("beta_max", self.beta_max)
        if not lo < hi:
            raise ObjectiveError(
                f"the multi-rate beta range needs 0 < beta_min < beta_max, got [{self.beta_min!r}, "
                f"{self.beta_max!r}]")

    def prepare(self, model, train_x: Tensor) -> None:
        """The model must be beta-conditioned; its gates standardize log beta by this range."""
        model = require_beta_conditioned(model, "the multi-rate objective")
        model.set_beta_range(self.beta_min, self.beta_max)

    def sample_beta(self, n: int, device: torch.device | str = "cpu",
                    generator: torch.Generator | None = None) -> Tensor:
        """n betas with log beta ~ Uniform[log beta_min, log beta_max] (torch's global RNG by
        default, so that a checkpointed trainer resumes the same stream)."""
        lo, hi = math.log(self.beta_min), math.log(self.beta_max)
        u = torch.rand(n, generator=generator, device=device)
        return torch.exp(lo + (hi - lo) * u)

    def loss(self, rate: Tensor, distortion: Tensor, beta: Tensor) -> Tensor:
        """mean_n (D_n + beta_n R_n) for the per-example betas the model was conditioned on."""
        return (distortion + beta.to(rate.dtype) * rate).mean()

    def __call__(self, model, x: Tensor, step: int = 0) -> StepResult:
        beta = self.sample_beta(len(x), x.device)
        with require_beta_conditioned(model, "the multi-rate objective").conditioned_on(beta):
            out = model(x)
        return StepResult(self.loss(out.rate.float(), out.distortion.float(), beta), out.rate, out.distortion)

    def describe(self) -> str:
        return f"D + beta R, log beta ~ U[log {self.beta_min:g}, log {self.beta_max:g}]"


@register_objective("multi-rate")
def multi_rate_objective(beta_min: float = DEFAULT_BETA_RANGE[0],
                         beta_max: float = DEFAULT_BETA_RANGE[1]) -> MultiRateObjective:
    """D + beta R with log beta ~ U[log beta_min, log beta_max] per example, the model conditioned on
    it (a beta-conditioned family: mr-mlp, mr-conv). Per-epoch metrics and the summary are at beta = 1;
    evaluate other betas with `rdvae eval RUN --betas ...`."""
    return MultiRateObjective(beta_min, beta_max)
