"""The Dataset value handed to the rest of rdvae, and binarization of grey levels."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch

from rdvae.data.errors import DataError

SPLITS = ("train", "valid", "test")
BINARIZE_CHOICES = (None, "static", "dynamic", "threshold")


@dataclass(eq=False)
class Dataset:
    """Three float32 splits with labels and how they were binarized.

    Images are [N, C, H, W] in [0, 1]; bag-of-words sets are [N, V] counts; tabular data [N, D].
    `binary` is True when every value is 0 or 1 (after `train_transform` for dynamic).
    valid and test are in-memory tensors; train is one too, or, for data too large for memory, a
    map-style torch.utils.data.Dataset that the trainer streams in batches through a DataLoader
    (`loader_workers` processes; see rdvae.data.streaming.from_torch_dataset).
    """

    name: str
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    labels: dict[str, torch.Tensor | None]
    event_shape: tuple[int, ...]
    binary: bool
    binarize: str | None = None
    seed: int = 0
    vocabulary: list[str] | None = field(default=None, repr=False)
    note: str = ""
    fingerprint: str | None = None  # hex SHA-256 of a user-given source (data/files.py)
    loader_workers: int = 0         # DataLoader workers of a streamed train split

    @property
    def streamed(self) -> bool:
        """True when the train split is streamed from a torch Dataset rather than held in memory."""
        return not isinstance(self.train, torch.Tensor)

    def __repr__(self) -> str:
        return f"Dataset({self.describe()})"

    def split(self, name: str) -> torch.Tensor:
        """The tensor of split "train", "valid" or "test"."""
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        return getattr(self, name)

    def train_transform(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Applied by the trainer to each training batch: a fresh Bernoulli draw when
        binarize="dynamic", else the identity. The generator may live on another device."""
        if self.binarize != "dynamic":
            return x
        if generator is None or generator.device == x.device:
            return torch.bernoulli(x, generator=generator)
        # e.g. a CPU generator for a CUDA batch: draw uniforms where the generator lives.
        u = torch.rand(x.shape, generator=generator, device=generator.device)
        return (u.to(x.device) < x).to(x.dtype)

    def describe(self) -> str:
        """One line: name, split sizes, event shape, binarization."""
        sizes = " / ".join(f"{s} {len(self.split(s))}" for s in SPLITS)
        if self.binarize == "dynamic":
            how = f"dynamic binarization (train resampled per batch, valid/test seed {self.seed})"
        elif self.binarize == "static":
            how = f"static binarization (seed {self.seed})"
        elif self.binarize == "threshold":
            how = "threshold binarization (x > 0.5)"
        elif self.vocabulary is not None:
            how = f"word counts over {len(self.vocabulary)} words"
        else:
            how = "binary" if self.binary else "grey levels in [0, 1]"
        note = f"; {self.note}" if self.note else ""
        return f"{self.name}: {sizes}, event shape {self.event_shape}, {how}{note}"


def check_binarize(binarize: str | None) -> str | None:
    """The validated binarize option."""
    if binarize not in BINARIZE_CHOICES:
        choices = ", ".join(repr(c) for c in BINARIZE_CHOICES)
        raise DataError(f"unknown binarize={binarize!r}; choose one of {choices}")
    return binarize


def split_generator(seed: int, split: str) -> torch.Generator:
    """An independent, reproducible random stream for one split."""
    state = np.random.SeedSequence([seed, SPLITS.index(split)]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & (2**63 - 1))


def binarized(ds: Dataset, how: str) -> Dataset:
    """A grey-level Dataset binarized as its loader would have done with binarize=how (the same
    draws: each split from its own seeded stream)."""
    check_binarize(how)
    if ds.binary or ds.streamed:
        raise DataError(f"{ds.name} cannot be binarized: it is "
                        + ("binary already" if ds.binary else "streamed"))
    splits = {s: binarize_split(ds.split(s), how, s, ds.seed) for s in SPLITS}
    return dataclasses.replace(ds, **splits, binary=how is not None, binarize=how)


def binarize_split(x: torch.Tensor, how: str | None, split: str, seed: int) -> torch.Tensor:
    """Grey levels in [0, 1] -> the split as `how` asks (dynamic leaves train grey)."""
    if how is None or (how == "dynamic" and split == "train"):
        return x
    if how == "threshold":
        return (x > 0.5).to(x.dtype)
    return torch.bernoulli(x, generator=split_generator(seed, split))
