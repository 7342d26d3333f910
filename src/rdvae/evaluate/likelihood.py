"""Importance-weighted log-likelihood (Burda et al. 2016).

    log p(x) >= log (1/k) sum_i d(x|z_i) m(z_i) / e(z_i|x),   z_i ~ e(z|x)

The bound is the ELBO for k = 1, grows with k and tends to log p(x). Samples and examples
are batched together: each decoder call sees up to `rows` (example, sample) pairs, and the
log-sum-exp over samples is accumulated chunk by chunk.

On the CPU the default block is sized to the cache: BLOCK_FLOATS floats of decoder output (rows x
prod(event_shape)), 1337 rows for 28 x 28 images, so that a block's activations stay in cache from
layer to layer; with one thread, blocks of 500-2000 rows ran 1.05-1.25x faster than 8192 rows at
k = 1000 (benchmarks/iw_blocks.py, docs/results/benchmarks.md). Elsewhere (CUDA) blocks stay large.
The block size decides which draws go to which example, so estimates with different `rows` differ
by Monte Carlo noise; rows=8192 draws what the default drew before.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..device import autocast
from ..protocols import LatentVariableModel
from .batching import model_device

BLOCK_FLOATS = 2**20   # decoder outputs per block on the CPU: 4 MiB of float32
MAX_ROWS = 8192


def default_rows(event_shape, device: torch.device) -> int:
    """(example, sample) pairs per decoder call: MAX_ROWS, or on the CPU as many as keep the decoder's
    output within BLOCK_FLOATS."""
    if device.type != "cpu":
        return MAX_ROWS
    return max(1, min(MAX_ROWS, BLOCK_FLOATS // max(1, math.prod(event_shape))))


@torch.inference_mode()
def iw_log_likelihood(model: LatentVariableModel, x: Tensor, samples: int, rows: int | None = None,
                      precision: str = "fp32", progress: bool = False) -> Tensor:
    """The k-sample importance-weighted estimate of log p(x) for every example: [N] nats.
    `rows`: (example, sample) pairs per decoder call (None: `default_rows`)."""
    if samples < 1:
        raise ValueError(f"iw samples must be >= 1, got {samples}")
    device = model_device(model)
    rows = default_rows(x.shape[1:], device) if rows is None else rows
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
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
