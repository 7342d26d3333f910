"""Retrieval with binary codes (semantic hashing): rank a database by Hamming distance to each
query code and measure precision@k, the fraction of the k nearest that share the query's label.

Hamming distance between bit vectors is |q| + |d| - 2 <q, d>, one matrix product per chunk of
queries. Codes at equal distance are ordered at random (seeded), so ties neither help nor hurt.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .batching import chunks, model_device


def hamming_distances(queries: Tensor, database: Tensor) -> Tensor:
    """Bits differing between every query [M, b] and database code [N, b] (both in {0, 1}): [M, N]."""
    q, d = queries.double(), database.double()
    return q.sum(-1, keepdim=True) + d.sum(-1) - 2.0 * q @ d.T


@torch.inference_mode()
def precision_at_k(query_codes: Tensor, query_labels: Tensor, database_codes: Tensor,
                   database_labels: Tensor, k: int = 100, chunk: int = 512, seed: int = 0) -> float:
    """Mean over queries of the fraction of the k Hamming-nearest database items with the
    query's label."""
    if not 1 <= k <= len(database_codes):
        raise ValueError(f"k must be in 1..{len(database_codes)} (the database size), got {k}")
    generator = torch.Generator().manual_seed(seed)
    hits = 0.0
    for start in range(0, len(query_codes), chunk):
        q = query_codes[start:start + chunk]
        dist = hamming_distances(q, database_codes)
        dist = dist + torch.rand(dist.shape, generator=generator, dtype=dist.dtype)  # random tie order
        nearest = dist.topk(k, dim=1, largest=False).indices                     # [m, k]
        same = database_labels[nearest] == query_labels[start:start + chunk, None]
        hits += same.double().mean(1).sum().item()
    return hits / len(query_codes)


@torch.inference_mode()
def binary_codes(encoder, x: Tensor, threshold: float = 0.5, batch_size: int = 1000) -> Tensor:
    """Each example's code: the bits 1[E[z|x] > threshold] of its posterior mean, [N, d] in {0, 1} on the
    CPU (threshold 0.5: the most probable bits of Bernoulli latents; 0: the signs of Gaussian ones)."""
    device = model_device(encoder)
    return torch.cat([(encoder(xb).mean > threshold).float().cpu() for xb in chunks(x, batch_size, device)])
