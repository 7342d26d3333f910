"""Training objectives over per-example rate R and distortion D (nats).

`rate_distortion`: beta, target rate, free bits and KL annealing (what `make_objective` builds);
`multi_rate`: log beta drawn per example (Multi-Rate VAE); `total_correlation`: the minibatch
stratified estimator of the rate's decomposition (beta-TCVAE style, biased: for training only).
"""

from .rate_distortion import (
    BetaObjective,
    FreeBitsObjective,
    KLAnnealing,
    ObjectiveError,
    TargetRateObjective,
    make_objective,
)

__all__ = ["BetaObjective", "FreeBitsObjective", "KLAnnealing", "ObjectiveError",
           "TargetRateObjective", "make_objective"]
