"""ARM and DisARM: antithetic estimators for factorized Bernoulli latents b ~ Bernoulli(sigmoid(a)).

One uniform u per bit gives an antithetic pair with the right marginals,

    b = 1[u < sigmoid(a)],   b~ = 1[1 - u < sigmoid(a)],

and the gradient of E f(b) with respect to the logits a is estimated by

    ARM    (Yin & Zhou 2019):     (f(b~) - f(b)) (u - 1/2)
    DisARM (Dong, Mnih & Tucker): 1/2 (f(b) - f(b~)) (-1)^(b~_i) 1[b_i != b~_i] sigmoid(|a_i|)

DisARM is ARM with u integrated out given (b, b~), so its variance is never larger.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.distributions import Bernoulli, Distribution, Independent

from .estimate import Estimate


def bernoulli_logits(q: Distribution, estimator: str) -> Tensor:
    if isinstance(q, Independent) and isinstance(q.base_dist, Bernoulli) and q.reinterpreted_batch_ndims == 1:
        return q.base_dist.logits
    raise TypeError(
        f"{estimator} needs factorized Bernoulli latents (Independent(Bernoulli), event [d]), got "
        f"{type(q).__name__}; use reinforce, gumbel or exact for categorical latents")


def antithetic_pair(logits: Tensor, passes: int) -> tuple[Tensor, Tensor, Tensor]:
    """u [P, B, d] and the pair b, b~ (float {0, 1}) it defines."""
    u = torch.rand((passes, *logits.shape), device=logits.device, dtype=logits.dtype)
    p = torch.sigmoid(logits.detach())
    return u, (u < p).to(logits.dtype), (1.0 - u < p).to(logits.dtype)


def _with_gradient(logits: Tensor, f_b: Tensor, f_bt: Tensor, grad: Tensor, b: Tensor,
                   bt: Tensor) -> Estimate:
    """Value: the mean of f over both members of every pair; logits gradient: `grad` [P, B, d]
    averaged over passes."""
    surrogate = (grad.mean(0).detach() * logits).sum(-1)
    value = 0.5 * (f_b + f_bt).mean(0)
    return Estimate(value + surrogate - surrogate.detach(), torch.cat([b, bt]))


def _evaluate_pair(f: Callable[[Tensor], Tensor], b: Tensor, bt: Tensor) -> tuple[Tensor, Tensor]:
    both = f(torch.cat([b, bt]))                                         # one call, [2P, B]
    return both[: len(b)], both[len(b):]


def arm(q: Distribution, f: Callable[[Tensor], Tensor], passes: int = 1, **_) -> Estimate:
    """The ARM estimate, averaged over `passes` independent antithetic pairs."""
    logits = bernoulli_logits(q, "ARM")
    u, b, bt = antithetic_pair(logits, passes)
    f_b, f_bt = _evaluate_pair(f, b, bt)
    grad = (f_bt - f_b).detach().unsqueeze(-1) * (u - 0.5)
    return _with_gradient(logits, f_b, f_bt, grad, b, bt)


def disarm(q: Distribution, f: Callable[[Tensor], Tensor], passes: int = 1, **_) -> Estimate:
    """The DisARM estimate, averaged over `passes` independent antithetic pairs."""
    logits = bernoulli_logits(q, "DisARM")
    _, b, bt = antithetic_pair(logits, passes)
    f_b, f_bt = _evaluate_pair(f, b, bt)
    sign = 1.0 - 2.0 * bt                                                # (-1)^(b~_i)
    weight = sign * (b != bt).to(logits.dtype) * torch.sigmoid(logits.detach().abs())
    grad = 0.5 * (f_b - f_bt).detach().unsqueeze(-1) * weight
    return _with_gradient(logits, f_b, f_bt, grad, b, bt)
