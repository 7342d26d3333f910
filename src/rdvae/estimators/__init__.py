"""Gradient estimators for discrete latents, and the VAE that uses them.

Every estimator has the signature `estimator(q, f, passes=1, **options) -> Estimate`, where
q = e(z|x) is a torch Distribution over discrete z and f maps z [S, B, d] to [S, B] (the
distortion). The returned value is an unbiased estimate of E_q[f] whose gradient with respect
to q's parameters is the estimator's (see Estimate); `passes` independent estimates are averaged.

    exact       enumeration of every state (small latent spaces)
    reinforce   REINFORCE with a leave-one-out baseline over 2 draws per pass
    arm         ARM (factorized Bernoulli)
    disarm      DisARM (factorized Bernoulli), the default
    gumbel      straight-through Gumbel-softmax with an annealed temperature (biased)
"""

from .antithetic import arm, disarm
from .enumeration import (
    exact_expectation,
    exact_log_likelihood,
    exact_posterior,
    latent_states,
)
from .estimate import Estimate
from .relaxation import TemperatureSchedule, gumbel_straight_through
from .score_function import reinforce_loo
from .vae import ESTIMATORS, DiscreteVAE

UNBIASED = ("exact", "reinforce", "arm", "disarm")

__all__ = [
    "ESTIMATORS",
    "UNBIASED",
    "DiscreteVAE",
    "Estimate",
    "TemperatureSchedule",
    "arm",
    "disarm",
    "exact_expectation",
    "exact_log_likelihood",
    "exact_posterior",
    "gumbel_straight_through",
    "latent_states",
    "reinforce_loo",
]
