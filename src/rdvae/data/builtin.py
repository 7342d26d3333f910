"""rdvae's own datasets, registered through the same `register_dataset` a user's plugin calls."""

from __future__ import annotations

import os

from ..registry import register_dataset
from .dataset import Dataset
from .load import load_spec_dataset
from .sources import ALIASES, REGISTRY


def _spec_loader(name: str):
    def load(binarize: str | None = None, root: str | os.PathLike | None = None, download: bool = True,
             seed: int = 0, pad: int = 0) -> Dataset:
        return load_spec_dataset(name, root=root, binarize=binarize, download=download, seed=seed, pad=pad)

    load.__qualname__ = load.__name__ = f"load_{name.replace('-', '_')}"
    load.__doc__ = (f"The {name} dataset (rdvae.data.sources): binarize None|static|dynamic|threshold for "
                    "grey levels, root (default $RDVAE_DATA), download, seed (static binarization), "
                    "pad (zero pixels added on each side of images, e.g. 2: 28 x 28 -> 32 x 32).")
    return load


for _name in sorted(REGISTRY):
    register_dataset(_name, _spec_loader(_name),
                     aliases=tuple(alias for alias, target in ALIASES.items() if target == _name))
