"""Training objectives: one interface (base.Objective), registered by name.

`beta` (alias rate-distortion), `free-bits`, `target-rate` (rate_distortion), `multi-rate` (log beta
drawn per example, Multi-Rate VAE), `beta-tc` (the minibatch stratified estimator of the rate's
decomposition, beta-TCVAE style, biased: for training only), `wae-mmd` (alias wae: D + lambda MMD^2
between the codes and draws of m(z), unbiased U-statistic; Tolstikhin et al. 2018) and `dip-vae`
(alias dip: D + R + a penalty on the covariance of the encoder means or of q(z), DIP-VAE-I/II; Kumar
et al. 2018) and `conditional-likelihood` (alias sleep: the encoder alone fitted to a frozen decoder
by -log e(z|x) on pairs drawn from the model). A run's config picks one by name (`objective`, or
from the fields it sets: multi_rate, target_rate, free_bits, else beta) and passes the options that
are not config fields in `objective_options` (e.g. --objective wae-mmd --set objective_options.kernel=rbf).
"""

from .base import Objective, ObjectiveError, RateDistortionObjective, StepResult, build_objective
from .conditional_likelihood import ConditionalLikelihoodObjective
from .dip import DIPObjective
from .multi_rate import MultiRateObjective
from .rate_distortion import BetaObjective, FreeBitsObjective, KLAnnealing, TargetRateObjective
from .total_correlation import BetaTCObjective
from .wae import MMDKernel, WAEObjective

__all__ = ["BetaObjective", "BetaTCObjective", "ConditionalLikelihoodObjective", "DIPObjective",
           "FreeBitsObjective", "KLAnnealing", "MMDKernel", "MultiRateObjective", "Objective",
           "ObjectiveError", "RateDistortionObjective",
           "StepResult", "TargetRateObjective", "WAEObjective", "build_objective"]
