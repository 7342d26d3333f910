"""Importance-weighted log-likelihood (Burda et al. 2016).

    log p(x) >= log (1/k) sum_i d(x|z_i) m(z_i) / e(z_i|x),   z_i ~ e(z|x)

The bound is the ELBO for k = 1, grows with k and tends to log p(x). Samples and examples
are batched together: each decoder call sees up to `rows` (example, sample) pairs, and the
log-sum-exp over samples is accumulated chunk by chunk.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..device import autocast
from ..protocols import LatentVariableModel
from .batching import model_device


@torch.inference_mode()
def iw_log_likelihood(model: LatentVariableModel, x: Tensor, samples: int, rows: int = 8192,
                      precision: str = "fp32", progress: bool = False) -> Tensor:
    """The k-sample importance-weighted estimate of log p(x) for every example: [N] nats."""
    if samples < 1:
        raise ValueError(f"iw samples must be >= 1, got {samples}")
    device = model_device(model)
    per_call = min(samples, rows)
    examples = max(1, rows // per_call)
    out = []
    bar = tqdm(total=len(x), desc=f"IW k={samples}", unit="ex", disable=not progress, leave=False)
    with autocast(precision, device):
        p = model.marginal_distribution()
        for start in range(0, len(x), examples):
            xb = x[start:start + examples].to(device)
            q = model.encoder(xb)
            total = torch.full((len(xb),), -math.inf, device=device, dtype=torch.float64)
            for done in range(0, samples, per_call):
                s = min(per_call, samples - done)
                log_w = model.log_importance_weights(xb, s, q=q, p=p).double()
                total = torch.logaddexp(total, torch.logsumexp(log_w, dim=0))
            out.append((total - math.log(samples)).float().cpu())
            bar.update(len(xb))
    bar.close()
    return torch.cat(out)
