"""Active units (Burda et al. 2016): latent dimensions whose posterior mean varies with x,
Var_x(E[z_u | x]) > threshold (0.01 by convention)."""

from __future__ import annotations

import torch
from torch import Tensor

from .batching import chunks, model_device

THRESHOLD = 0.01   # the convention


@torch.inference_mode()
def posterior_means(encoder, x: Tensor, batch_size: int = 1000) -> Tensor:
    """E[z | x_n] of every example, in float64 on the encoder's device: [N, d]."""
    device = model_device(encoder)
    return torch.cat([encoder(xb).mean.double() for xb in chunks(x, batch_size, device)])


def mean_variance(means: Tensor) -> Tensor:
    """Var over examples of posterior means [N, d], per latent dimension: [d] (float32, on the CPU)."""
    return means.var(dim=0, unbiased=False).float().cpu()


def posterior_mean_variance(encoder, x: Tensor, batch_size: int = 1000) -> Tensor:
    """Var over examples of the posterior mean, per latent dimension: [d]."""
    return mean_variance(posterior_means(encoder, x, batch_size))


def count_active(variance: Tensor, threshold: float = THRESHOLD) -> int:
    """The dimensions whose variance of the posterior mean exceeds `threshold`."""
    return int((variance > threshold).sum())


def active_units(encoder, x: Tensor, threshold: float = THRESHOLD, batch_size: int = 1000) -> int:
    return count_active(posterior_mean_variance(encoder, x, batch_size), threshold)
