"""An Inception (or any other) feature network that the user has locally, plugged into FID.

rdvae downloads no weights. A network saved with TorchScript loads without unpickling Python
objects, e.g. the Inception-v3 of StyleGAN2-ADA / clean-fid (`inception-2015-12-05.pt`), which
takes [N, 3, H, W] images with values in 0..255, resizes them itself and returns 2048 pool
features when called with `return_features=True`:

    net = TorchScriptFeatures("inception-2015-12-05.pt")            # the defaults fit that file
    fid = frechet_distance_of_images(net, generated, reference)

Grey images are repeated over three channels; `size` resizes (bilinear) before the call when
the network does not resize itself.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class TorchScriptFeatures(nn.Module):
    """features(x) for images x in [0, 1]: x mapped to `value_range`, grey -> RGB, optionally
    resized to `size`, then the TorchScript network called with `call_kwargs`."""

    def __init__(self, path: str | Path, value_range: tuple[float, float] = (0.0, 255.0),
                 size: int | None = None, rgb: bool = True, call_kwargs: dict | None = None):
        super().__init__()
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(
                f"no feature network at {path}; rdvae does not download Inception weights. Save a "
                "TorchScript feature network there (e.g. StyleGAN2-ADA's inception-2015-12-05.pt) or use "
                "the default classifier features (rdvae.fid.feature_classifier)")
        self.net = torch.jit.load(str(path), map_location="cpu").eval()
        self.low, self.high = value_range
        self.size, self.rgb = size, rgb
        self.call_kwargs = {"return_features": True} if call_kwargs is None else dict(call_kwargs)

    @torch.no_grad()
    def features(self, x: Tensor) -> Tensor:
        if self.rgb and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.size is not None:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = self.low + (self.high - self.low) * x.clamp(0, 1)
        return self.net(x, **self.call_kwargs).flatten(1)
