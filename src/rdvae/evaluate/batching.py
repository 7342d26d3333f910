"""Chunking and Monte Carlo summaries shared by the batched estimators."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor


def chunks(x: Tensor, size: int, device: torch.device) -> Iterator[Tensor]:
    """Consecutive slices of x along dim 0, moved to the device (one copy per slice)."""
    for start in range(0, len(x), size):
        yield x[start:start + size].to(device, non_blocking=True)


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def mean_and_stderr(terms: Tensor) -> tuple[float, float]:
    """Mean of per-example terms and its Monte Carlo standard error (NaN for one term)."""
    terms = terms.double()
    stderr = terms.std().item() / math.sqrt(len(terms)) if len(terms) > 1 else math.nan
    return terms.mean().item(), stderr
