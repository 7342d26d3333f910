"""The Frechet distance between two Gaussians fitted to feature vectors (Heusel et al. 2017):

    d^2 = ||mu_a - mu_b||^2 + tr(C_a) + tr(C_b) - 2 tr((C_a^{1/2} C_b C_a^{1/2})^{1/2})

(tr (C_a C_b)^{1/2} computed through the symmetric form, whose eigenvalues are those of C_a C_b.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class FeatureStatistics:
    """Mean and covariance (unbiased, float64) of `count` feature vectors."""

    mean: Tensor
    covariance: Tensor
    count: int


def feature_statistics(features: Tensor) -> FeatureStatistics:
    """Statistics of features [N, F] (N >= 2)."""
    if features.dim() != 2 or len(features) < 2:
        raise ValueError(f"feature statistics need a [N, F] matrix with N >= 2, got {tuple(features.shape)}")
    x = features.double()
    mean = x.mean(0)
    centred = x - mean
    return FeatureStatistics(mean, centred.T @ centred / (len(x) - 1), len(x))


def _psd_sqrt(matrix: Tensor) -> Tensor:
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance(a: FeatureStatistics, b: FeatureStatistics) -> float:
    """The Frechet (2-Wasserstein) distance squared between N(a.mean, a.cov) and N(b.mean, b.cov)."""
    if a.mean.shape != b.mean.shape:
        raise ValueError(f"feature dimensions differ: {tuple(a.mean.shape)} vs {tuple(b.mean.shape)}")
    root_a = _psd_sqrt(a.covariance)
    middle = root_a @ b.covariance @ root_a
    trace_root = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    distance = (a.mean - b.mean).square().sum() + a.covariance.trace() + b.covariance.trace() - 2 * trace_root
    return max(distance.item(), 0.0)
