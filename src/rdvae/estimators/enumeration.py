"""Exact expectations over small discrete latent spaces, by enumerating every state.

    E_e[f(z)] = sum_z e(z|x) f(z)                       (value and gradient exact)
    log p(x)  = logsumexp_z [log m(z) - D(x, z)]        (the exact log-likelihood)
    p(z|x)    = m(z) d(x|z) / p(x)                      (the exact posterior)

Used as the reference the stochastic estimators are tested against, and as the training
estimator of the Gaussian-mixture toy.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.distributions import Bernoulli, Distribution, Independent, OneHotCategorical

from ..components.discrete import bit_table
from .estimate import Estimate

MAX_STATES = 1 << 16


def latent_states(dist: Distribution) -> Tensor:
    """Every value z can take under a discrete latent distribution: [S, d].

    Factorized bits (event [d]) give the 2^d binary strings; a one-hot categorical over K
    states gives the K unit vectors.
    """
    if isinstance(dist, OneHotCategorical):
        k = dist.event_shape[-1]
        return torch.eye(k, device=dist.logits.device, dtype=dist.logits.dtype)
    if isinstance(dist, Independent) and isinstance(dist.base_dist, Bernoulli) \
            and dist.reinterpreted_batch_ndims == 1:
        bits = dist.event_shape[-1]
        if 2 ** bits > MAX_STATES:
            raise ValueError(
                f"exact enumeration over {bits} bits means 2^{bits} decoder calls per example; "
                f"use it for at most {MAX_STATES.bit_length() - 1} bits, or pick a stochastic "
                "estimator (disarm, arm, reinforce, gumbel)")
        return bit_table(bits).to(dist.base_dist.logits)
    raise TypeError(
        f"cannot enumerate the states of {type(dist).__name__}; exact enumeration supports "
        "factorized Bernoulli codes (Independent(Bernoulli), event [d]) and OneHotCategorical")


def states_for(dist: Distribution, states: Tensor) -> Tensor:
    """The states broadcast against dist's batch shape: [S, *batch, d]."""
    batch = dist.batch_shape
    view = states.reshape(len(states), *([1] * len(batch)), states.shape[-1])
    return view.expand(len(states), *batch, states.shape[-1])


def exact_expectation(q: Distribution, f: Callable[[Tensor], Tensor], passes: int = 1,
                      **_) -> Estimate:
    """E_q[f(z)] summed over all states; gradients flow through q's probabilities and f.

    f maps z [S, B, d] to [S, B]. `passes` is accepted for a uniform estimator signature and
    has no effect (the sum is exact).
    """
    z = states_for(q, latent_states(q))                                  # [S, B, d]
    value = (q.log_prob(z).exp() * f(z)).sum(0)
    return Estimate(value, z)


def exact_log_likelihood(marginal: Distribution, distortion: Callable[[Tensor], Tensor],
                         batch: int) -> Tensor:
    """log p(x) = logsumexp_z [log m(z) - D(x, z)] for each of `batch` examples: [B].

    `distortion` maps z [S, B, d] to D = -log d(x|z) [S, B].
    """
    return exact_log_joint(marginal, distortion, batch).logsumexp(0)


def exact_posterior(marginal: Distribution, distortion: Callable[[Tensor], Tensor],
                    batch: int) -> Tensor:
    """p(z_s | x_b) for every state and example: [S, B] (columns sum to one)."""
    log_joint = exact_log_joint(marginal, distortion, batch)
    return (log_joint - log_joint.logsumexp(0)).exp()


def exact_log_joint(marginal: Distribution, distortion: Callable[[Tensor], Tensor],
                    batch: int) -> Tensor:
    """log m(z_s) - D(x_b, z_s): [S, B]."""
    states = latent_states(marginal)
    z = states.unsqueeze(1).expand(len(states), batch, states.shape[-1])
    return marginal.log_prob(states).unsqueeze(1) - distortion(z)
