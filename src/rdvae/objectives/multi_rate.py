"""The Multi-Rate VAE objective (Bae et al., ICLR 2023, eq. 11 and Algorithm 1).

One beta per example, log beta ~ Uniform[log a, log b] (default a = 0.01, b = 10), and

    loss = mean_n (D_n + beta_n R_n)

where the model is conditioned on the same beta_n (components.multi_rate.conditioned_on), so a
single run learns the beta-VAE optimum for every beta in [a, b]: the whole rate-distortion curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .rate_distortion import ObjectiveError


@dataclass(frozen=True)
class MultiRateObjective:
    beta_min: float = 0.01
    beta_max: float = 10.0

    def __post_init__(self):
        lo, hi = float(self.beta_min), float(self.beta_max)
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
            raise ObjectiveError(
                f"the multi-rate beta range needs 0 < beta_min < beta_max, got [{self.beta_min!r}, "
                f"{self.beta_max!r}]")

    def sample_beta(self, n: int, device: torch.device | str = "cpu",
                    generator: torch.Generator | None = None) -> Tensor:
        """n betas with log beta ~ Uniform[log beta_min, log beta_max] (torch's global RNG by
        default, so that a checkpointed trainer resumes the same stream)."""
        lo, hi = math.log(self.beta_min), math.log(self.beta_max)
        u = torch.rand(n, generator=generator, device=device)
        return torch.exp(lo + (hi - lo) * u)

    def __call__(self, rate: Tensor, distortion: Tensor, step: int = 0, beta: Tensor | None = None) -> Tensor:
        if beta is None:
            raise ObjectiveError("the multi-rate objective needs the per-example betas the model was "
                                 "conditioned on: objective(rate, distortion, step, beta=beta)")
        return (distortion + beta.to(rate.dtype) * rate).mean()

    def describe(self) -> str:
        return f"D + beta R, log beta ~ U[log {self.beta_min:g}, log {self.beta_max:g}]"


def make_multi_rate_objective(beta_min: float = 0.01, beta_max: float = 10.0, beta: float = 1.0,
                              target_rate: float | None = None, free_bits: float | None = None,
                              kl_anneal_steps: int = 0) -> MultiRateObjective:
    """The multi-rate objective, refusing the settings of a single-beta run that have no meaning
    here (beta is drawn per example; evaluations during training are at beta = 1)."""
    clashes = [name for name, bad in (("target_rate", target_rate is not None),
                                      ("free_bits", free_bits is not None),
                                      ("kl_anneal_steps", bool(kl_anneal_steps)),
                                      ("beta", beta != 1.0)) if bad]
    if clashes:
        raise ObjectiveError(
            f"multi-rate training draws beta per example from [beta_min, beta_max] and cannot be "
            f"combined with {', '.join(clashes)}; drop them (the run's per-epoch metrics and summary "
            "are at beta = 1; evaluate other betas with `rdvae eval RUN --betas ...`)")
    return MultiRateObjective(beta_min, beta_max)
