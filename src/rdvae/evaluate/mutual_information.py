"""The aggregate posterior q(z) = (1/N) sum_n e(z|x_n) and the mutual information

    I_q(x; z) = E_n E_{z ~ e(z|x_n)} [log e(z|x_n) - log q(z)]  <=  log N,

with log q(z) summed over every evaluated example in chunks, never over a minibatch
(a minibatch estimate is biased and can exceed log N; Hoffman & Johnson 2016).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.distributions import Independent

from ..components.distributions import pairwise_log_prob
from ..protocols import LatentVariableModel
from .batching import chunks, mean_and_stderr, model_device


@dataclass
class MutualInformation:
    value: float      # nats
    stderr: float     # Monte Carlo standard error over examples
    log_n: float      # log N, the upper limit

    @property
    def within_limit(self) -> bool:
        """I_q <= log N up to float rounding: posteriors that barely overlap put every term of the
        estimate at log N, and summing them in float32 lands a few 1e-6 above it (seen at N = 10 000);
        numerically broken posteriors overshoot by far more."""
        return self.value <= self.log_n + 1e-4

    @classmethod
    def from_terms(cls, terms: Tensor) -> MutualInformation:
        """The estimate from its per-example terms log e(z_n|x_n) - log q(z_n) [N], q over these N."""
        terms = terms.double()
        return cls(*mean_and_stderr(terms), math.log(len(terms)))


@torch.inference_mode()
def aggregate_log_density(encoder, x: Tensor, z: Tensor, batch_size: int = 1000,
                          max_entries: int = 1 << 24) -> Tensor:
    """log q(z_m) = logsumexp_n log e(z_m | x_n) - log N for points z [M, d] -> [M]."""
    device = z.device
    total = torch.full((len(z),), -math.inf, device=device, dtype=torch.float64)
    step = max(1, min(batch_size, max_entries // max(1, len(z))))
    for xb in chunks(x, step, device):
        log_q = pairwise_log_prob(encoder(xb), z).double()  # [M, chunk]
        total = torch.logaddexp(total, torch.logsumexp(log_q, dim=1))
    return (total - math.log(len(x))).float()


@torch.inference_mode()
def aggregate_log_density_per_dimension(encoder, x: Tensor, z: Tensor, batch_size: int = 1000,
                                        max_entries: int = 1 << 24) -> Tensor:
    """log q(z_mj) = logsumexp_n log e_j(z_mj | x_n) - log N for each dimension j of points
    z [M, d] -> [M, d]: the one-dimensional aggregate posteriors, over ALL x in chunks.

    Needs a factorized encoder (Independent over a base with batch [N, d], as every Gaussian
    encoder); its base log-densities are broadcast, [m, chunk, d] at a time.
    """
    device, (m, d) = z.device, z.shape
    total = torch.full((m, d), -math.inf, device=device, dtype=torch.float64)
    x_step = max(1, min(batch_size, len(x)))
    z_step = max(1, max_entries // (x_step * d))
    for xb in chunks(x, x_step, device):
        q = encoder(xb)
        if not (isinstance(q, Independent) and q.reinterpreted_batch_ndims == 1):
            raise TypeError(
                f"per-dimension aggregate densities need a factorized encoder (Independent over "
                f"one event dimension), got {type(q).__name__}")
        for start in range(0, m, z_step):
            zc = z[start:start + z_step]
            log_q = q.base_dist.log_prob(zc.unsqueeze(-2))  # [m, chunk, d]
            total[start:start + z_step] = torch.logaddexp(total[start:start + z_step],
                                                          torch.logsumexp(log_q, dim=1).double())
    return (total - math.log(len(x))).float()


@torch.inference_mode()
def posterior_samples(encoder, x: Tensor, batch_size: int = 1000) -> tuple[Tensor, Tensor]:
    """One z_n ~ e(z|x_n) per example and its log e(z_n|x_n): ([N, d], [N])."""
    device = model_device(encoder)
    zs, log_qs = [], []
    for xb in chunks(x, batch_size, device):
        q = encoder(xb)
        z = q.sample()
        zs.append(z)
        log_qs.append(q.log_prob(z))
    return torch.cat(zs), torch.cat(log_qs)


@torch.inference_mode()
def mutual_information(model: LatentVariableModel, x: Tensor, batch_size: int = 1000) -> MutualInformation:
    """I_q(x; z) over the N examples of x, one posterior sample per example."""
    z, log_q_cond = posterior_samples(model.encoder, x, batch_size)
    log_q = aggregate_log_density(model.encoder, x, z, batch_size)
    return MutualInformation.from_terms(log_q_cond - log_q)
