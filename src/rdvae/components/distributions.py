"""Distributions shared by encoders and marginals.

Diagonal Gaussians are `torch.distributions.Independent(Normal)`. Mixtures of diagonal
Gaussians (the learned mixture marginal, the VampPrior, and the aggregate posterior used by
the evaluators) all need the same quantity, the matrix of component log-densities
log N(z_m; mu_k, sigma_k), which lives here once: `gaussian_pairwise_log_prob`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Categorical, Distribution, Independent, Normal, constraints

LOG_2PI = math.log(2 * math.pi)


def diagonal_normal(loc: Tensor, scale: Tensor) -> Independent:
    """A diagonal Gaussian over the last dimension, without argument validation (hot path)."""
    return Independent(Normal(loc, scale, validate_args=False), 1, validate_args=False)


def is_diagonal_normal(dist: Distribution) -> bool:
    return (
        isinstance(dist, Independent)
        and isinstance(dist.base_dist, Normal)
        and dist.reinterpreted_batch_ndims == 1
    )


def gaussian_pairwise_log_prob(z: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
    """log N(z_m; loc_k, diag(scale_k^2)) for every pair: z [M, d], loc/scale [K, d] -> [M, K].

    Expands the quadratic form into three matrix products, so the cost is that of a matmul
    rather than an [M, K, d] broadcast. The products are taken in float64: the expansion
    subtracts large terms when scales are small, and float32 would lose hundredths of a nat.
    """
    out_dtype = z.dtype
    with torch.autocast(device_type=z.device.type, enabled=False):
        z64, mu, sd = z.double(), loc.double(), scale.double()
        precision = sd.pow(-2)  # [K, d]
        quad = (
            z64.pow(2) @ precision.T
            - 2.0 * z64 @ (mu * precision).T
            + (mu.pow(2) * precision).sum(-1)
        )  # [M, K]
        log_norm = -sd.log().sum(-1) - 0.5 * z.shape[-1] * LOG_2PI  # [K]
        out = -0.5 * quad.clamp_min(0.0) + log_norm
    return out.to(out_dtype)


def pairwise_log_prob(dist: Distribution, z: Tensor) -> Tensor:
    """log q_k(z_m) for a batched distribution q with batch shape [K] and points z [M, d] -> [M, K].

    Diagonal Gaussians take the matmul path; any other distribution is broadcast (it must
    support batch broadcasting in `log_prob`).
    """
    if is_diagonal_normal(dist):
        base = dist.base_dist
        return gaussian_pairwise_log_prob(z, base.loc, base.scale)
    return dist.log_prob(z.unsqueeze(-2))


class DiagonalGaussianMixture(Distribution):
    """sum_k w_k N(z; loc_k, diag(scale_k^2)) with w = softmax(logits); event shape [d].

    Used for the learned mixture marginal and the VampPrior. `log_prob` accepts any leading
    shape and evaluates all components with `gaussian_pairwise_log_prob`.
    """

    arg_constraints = {}
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, logits: Tensor, loc: Tensor, scale: Tensor):
        if loc.dim() != 2 or loc.shape != scale.shape or logits.shape != loc.shape[:1]:
            raise ValueError(
                f"mixture expects logits [K], loc and scale [K, d]; got {tuple(logits.shape)}, "
                f"{tuple(loc.shape)}, {tuple(scale.shape)}"
            )
        self.logits, self.loc, self.scale = logits, loc, scale
        super().__init__(torch.Size(), loc.shape[-1:], validate_args=False)

    @property
    def log_weights(self) -> Tensor:
        return torch.log_softmax(self.logits, dim=-1)

    @property
    def mean(self) -> Tensor:
        return (self.log_weights.exp().unsqueeze(-1) * self.loc).sum(0)

    def component_log_prob(self, z: Tensor) -> Tensor:
        """log w_k + log N(z; mu_k, sigma_k) with shape [..., K]."""
        flat = z.reshape(-1, z.shape[-1])
        comp = gaussian_pairwise_log_prob(flat, self.loc, self.scale)
        return (comp + self.log_weights).reshape(*z.shape[:-1], -1)

    def log_prob(self, value: Tensor) -> Tensor:
        return torch.logsumexp(self.component_log_prob(value), dim=-1)

    def sample(self, sample_shape: torch.Size | tuple = ()) -> Tensor:
        with torch.no_grad():
            shape = torch.Size(sample_shape)
            k = Categorical(logits=self.logits, validate_args=False).sample(shape)
            eps = torch.randn(*shape, self.loc.shape[-1], device=self.loc.device)
            return self.loc[k] + self.scale[k] * eps
