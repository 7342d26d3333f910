"""The FIDs of a stage against the ground truth, all on one feature network and on the same draws
(z, g0(z), x = g0(z) + sigma eps) of the ground truth:

    fid_redecoded     FID(g0(z), g(mu(x))): the ground truth against its re-decodings, the stage's decoder
                      mean at its encoder mean (what the [Re] text says table 1 measures)
    fid_re_sample     FID(g0(z), g(z') + sigma eps'), z' ~ e(z|x): the re-decoding as the [Re] FID script
                      saves it, a draw of the decoder N(g(z'), sigma^2 I) at a draw of the encoder
    fid_noise_floor   FID(g0(z), g0(z) + sigma eps) = FID(g0(z), x): what the observation noise alone
                      adds to an FID whose one side is noisy (the part of fid_re_sample that is not the
                      model's)
    fid_prior         FID(g0(z), g(z'')), z'' ~ N(0, I) drawn afresh: the stage's decoder as a generator
                      against the ground truth's images (not in the paper)

and rmse_redecoded, the root mean squared difference of g(mu(x)) and g0(z) image by image (FID compares
two sets; this says whether each re-decoding is its own ground truth).

Noisy images are clipped to [0, 1], as saving them as images does. Each FID is computed on `resamples`
independent sets of n draws (seeds seed, seed + 1, ...) and reported as the mean over the sets with its
standard error (their standard deviation / sqrt(resamples)) and the values. The images of a set are made
and passed through the features in chunks, so that the paper's 2e5 draws of 64 x 64 images are never
held at once (only their features).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rdvae.device import seeded
from rdvae.fid import extract_features, feature_statistics, frechet_distance

from .ground_truth import Draws, GroundTruth

# the image sets each compared with the ground truth g0(z), in the order their FIDs are reported
COMPARED = ("redecoded", "re_sample", "noise_floor", "prior")


@torch.no_grad()
def image_sets(model, draws: Draws) -> dict[str, Tensor]:
    """For draws (z, g0(z), x) of the ground truth: g0(z) ("ground_truth") and the images each FID
    compares with it (the module docstring), the stage's model in eval mode, from torch's current random
    stream (in this order: z' ~ e(z|x), the decoder's noise eps', z'' ~ N(0, I))."""
    model.eval()
    q = model.encoder(draws.x)
    return {"ground_truth": draws.means,
            "redecoded": model.decoder(q.mean).mean,
            "re_sample": model.decoder(q.sample()).sample().clamp(0, 1),
            "noise_floor": draws.x.clamp(0, 1),
            "prior": model.decoder(model.marginal_distribution().sample((len(draws.z),))).mean}


def mean_and_spread(values: list[float]) -> tuple[float, float]:
    """The mean of values from independent resamples and its standard error (NaN for one value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, math.nan
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(variance / len(values))


@torch.no_grad()
def stage_fids(features, truth: GroundTruth, model, n: int, resamples: int, seed: int,
               chunk: int = 500) -> dict:
    """fid_<set>, fid_<set>_se and fid_<set>_values for each compared set, rmse_redecoded, and the
    sizes (module docstring). `features`: the FID feature network (anything with .features(x) for images
    in [0, 1]: rdvae.fid's classifier or a TorchScript Inception), used for every set."""
    for name, value, low in (("n", n, 2), ("resamples", resamples, 1), ("chunk", chunk, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    device = truth.marginal.loc.device
    if isinstance(features, torch.nn.Module):
        features = features.to(device)
    values: dict[str, list[float]] = {name: [] for name in COMPARED}
    squared_error, pixels = 0.0, 0
    for r in range(resamples):
        collected: dict[str, list[Tensor]] = {name: [] for name in ("ground_truth", *COMPARED)}
        with seeded(seed + r, device):
            for start in range(0, n, chunk):
                draws = truth.draw(min(chunk, n - start))
                images = image_sets(model, draws)
                for name, x in images.items():
                    collected[name].append(extract_features(features, x, chunk).float().cpu())
                squared_error += (images["redecoded"] - draws.means).double().square().sum().item()
                pixels += draws.means.numel()
        statistics = {name: feature_statistics(torch.cat(parts)) for name, parts in collected.items()}
        for name in COMPARED:
            values[name].append(frechet_distance(statistics["ground_truth"], statistics[name]))
    result: dict = {"fid_draws": n, "fid_resamples": resamples, "fid_seed": seed}
    for name, fids in values.items():
        mean, se = mean_and_spread(fids)
        result.update({f"fid_{name}": mean, f"fid_{name}_se": se, f"fid_{name}_values": fids})
    result["rmse_redecoded"] = math.sqrt(squared_error / pixels)
    return result
