"""Chunking helpers for the batched estimators."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor


def chunks(x: Tensor, size: int, device: torch.device) -> Iterator[Tensor]:
    """Consecutive slices of x along dim 0, moved to the device (one copy per slice)."""
    for start in range(0, len(x), size):
        yield x[start:start + size].to(device, non_blocking=True)


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device
