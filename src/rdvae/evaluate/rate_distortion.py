"""Per-example rate, distortion and ELBO over a whole split."""

from __future__ import annotations

import torch
from torch import Tensor

from ..device import autocast
from ..protocols import LatentVariableModel
from .batching import chunks, model_device


@torch.inference_mode()
def rate_distortion(model: LatentVariableModel, x: Tensor, batch_size: int = 1000, samples: int = 1,
                    precision: str = "fp32") -> tuple[Tensor, Tensor]:
    """Rate and distortion of every example (nats, [N] each, on the CPU)."""
    device = model_device(model)
    rates, distortions = [], []
    with autocast(precision, device):
        for xb in chunks(x, batch_size, device):
            out = model(xb, samples=samples)
            rates.append(out.rate.float().cpu())
            distortions.append(out.distortion.float().cpu())
    return torch.cat(rates), torch.cat(distortions)
