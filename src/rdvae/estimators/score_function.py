"""REINFORCE (the score-function estimator) with a leave-one-out baseline.

For K draws z_k ~ e(z|x),

    grad E[f] ~ (1/K) sum_k (f(z_k) - c_k) grad log e(z_k|x),   c_k = mean_{j != k} f(z_j),

unbiased because c_k does not depend on z_k (Kool, van Hoof & Welling 2019). For Bernoulli
logits a, grad_a log e(b) = b - sigmoid(a). Works for any distribution with a log_prob.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor
from torch.distributions import Distribution

from .estimate import Estimate


def reinforce_loo(q: Distribution, f: Callable[[Tensor], Tensor], passes: int = 1,
                  **_) -> Estimate:
    """REINFORCE with a leave-one-out baseline over K = 2 * passes draws (two function
    evaluations per pass, the same cost as ARM and DisARM)."""
    k = 2 * passes
    z = q.sample((k,))                                                   # [K, B, d]
    fz = f(z)                                                            # [K, B]
    baseline = (fz.sum(0, keepdim=True) - fz) / (k - 1)
    surrogate = ((fz - baseline).detach() * q.log_prob(z)).mean(0)
    return Estimate(fz.mean(0) + surrogate - surrogate.detach(), z)
