"""FID: the Frechet distance between feature statistics of generated and held-out images,
computed on a stated number of samples (10 000 by default)."""

from __future__ import annotations

import torch
from torch import Tensor

from .frechet import FeatureStatistics, feature_statistics, frechet_distance

DEFAULT_SAMPLES = 10_000


@torch.no_grad()
def extract_features(net, images: Tensor, batch_size: int = 500) -> Tensor:
    """net.features(x) over images [N, C, H, W] in [0, 1], batched -> [N, F] float64."""
    if hasattr(net, "eval"):
        net.eval()
    return torch.cat([net.features(images[s:s + batch_size]).double()
                      for s in range(0, len(images), batch_size)])


IMAGES = ("auto", "mean", "sample")


@torch.no_grad()
def model_images(model, n: int, images: str = "auto", batch_size: int = 500) -> Tensor:
    """n images of a latent-variable model, z ~ m(z) then per z the mean of d(x|z) ("mean") or a draw
    from it ("sample"); "auto": draws for a decoder over discrete data (binary images, as its data are),
    means otherwise. From torch's current random stream; on the CPU."""
    if images not in IMAGES:
        raise ValueError(f"images must be one of {', '.join(IMAGES)}, got {images!r}")
    out = []
    for start in range(0, n, batch_size):
        decoded = model.sample(min(batch_size, n - start))
        draw = images == "sample" or (images == "auto" and _discrete(decoded))
        out.append((decoded.sample() if draw else decoded.mean).float().cpu())
    return torch.cat(out)


def _discrete(distribution) -> bool:
    try:
        return bool(getattr(distribution.support, "is_discrete", False))
    except NotImplementedError:   # a distribution that does not state its support: taken as continuous
        return False


def image_statistics(net, images: Tensor, batch_size: int = 500) -> FeatureStatistics:
    return feature_statistics(extract_features(net, images, batch_size))


def frechet_distance_of_images(net, generated: Tensor, reference: Tensor | FeatureStatistics,
                               batch_size: int = 500) -> float:
    """FID between generated images and reference images (or their precomputed statistics)."""
    ref = reference
    if not isinstance(ref, FeatureStatistics):
        ref = image_statistics(net, reference, batch_size)
    return frechet_distance(image_statistics(net, generated, batch_size), ref)
