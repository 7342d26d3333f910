"""Training objectives: one interface (base.Objective), registered by name.

`beta` (alias rate-distortion), `free-bits`, `target-rate` (rate_distortion), `multi-rate` (log beta
drawn per example, Multi-Rate VAE) and `beta-tc` (the minibatch stratified estimator of the rate's
decomposition, beta-TCVAE style, biased: for training only). A run's config picks one by name
(`objective`, or from the fields it sets: multi_rate, target_rate, free_bits, else beta).
"""

from .base import Objective, ObjectiveError, RateDistortionObjective, StepResult, build_objective
from .multi_rate import MultiRateObjective
from .rate_distortion import BetaObjective, FreeBitsObjective, KLAnnealing, TargetRateObjective
from .total_correlation import BetaTCObjective

__all__ = ["BetaObjective", "BetaTCObjective", "FreeBitsObjective", "KLAnnealing", "MultiRateObjective",
           "Objective", "ObjectiveError", "RateDistortionObjective", "StepResult", "TargetRateObjective",
           "build_objective"]
