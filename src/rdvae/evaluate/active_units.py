"""Active units (Burda et al. 2016): latent dimensions whose posterior mean varies with x,
Var_x(E[z_u | x]) > threshold (0.01 by convention)."""

from __future__ import annotations

import torch
from torch import Tensor

from .batching import chunks, model_device


@torch.inference_mode()
def posterior_mean_variance(encoder, x: Tensor, batch_size: int = 1000) -> Tensor:
    """Var over examples of the posterior mean, per latent dimension: [d]."""
    device = model_device(encoder)
    means = torch.cat([encoder(xb).mean.double() for xb in chunks(x, batch_size, device)])
    return means.var(dim=0, unbiased=False).float().cpu()


def active_units(encoder, x: Tensor, threshold: float = 0.01, batch_size: int = 1000) -> int:
    return int((posterior_mean_variance(encoder, x, batch_size) > threshold).sum())
