"""Training data too large for memory: a map-style torch Dataset streamed in batches.

    from rdvae import register_dataset
    from rdvae.data.streaming import from_torch_dataset

    @register_dataset("my-big-set")
    def load(binarize=None):
        return from_torch_dataset("my-big-set", train=MyDiskDataset("train"), valid=..., test=...)

The train split stays a torch Dataset (items: a tensor of the event shape, or a tuple whose first element
is one); each epoch the trainer reads the same shuffled batches it would slice from a tensor, through a
torch DataLoader (so a streamed run trains exactly like the same data held in memory). valid and test are
read once into tensors: the evaluators take log q(z) over a whole split.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from .dataset import Dataset
from .errors import DataError


def example_tensor(item) -> torch.Tensor:
    """The x of one item: a tensor or array, or the first element of a tuple (x, y, ...)."""
    if isinstance(item, tuple | list):
        item = item[0]
    return torch.as_tensor(np.asarray(item) if not isinstance(item, torch.Tensor) else item,
                           dtype=torch.float32)


def collate_examples(items: Sequence) -> torch.Tensor:
    return torch.stack([example_tensor(item) for item in items])


def read_all(source, what: str) -> torch.Tensor:
    """Every example of a split as one tensor."""
    if isinstance(source, torch.Tensor):
        return source.to(torch.float32)
    if len(source) == 0:
        raise DataError(f"the {what} split is empty")
    loader = DataLoader(source, batch_size=1024, shuffle=False, collate_fn=collate_examples,
                        generator=torch.Generator().manual_seed(0))
    return torch.cat(list(loader))


def from_torch_dataset(name: str, train: TorchDataset, valid: TorchDataset | None = None,
                       test: TorchDataset | None = None, binary: bool | None = None,
                       loader_workers: int = 0, stream: bool = True) -> Dataset:
    """An rdvae Dataset whose train split is streamed from `train` (stream=False reads it into memory).

    binary: whether every value is 0 or 1 (None: checked on valid and test and the first 1000 training
    examples). valid may be None (an empty split; the trainer then evaluates on test)."""
    if test is None:
        raise DataError(f"dataset {name!r}: a test split is needed (the final evaluation)")
    if not (isinstance(loader_workers, int) and loader_workers >= 0):
        raise DataError(f"loader_workers must be an integer >= 0, got {loader_workers!r}")
    if len(train) == 0:
        raise DataError(f"dataset {name!r}: the train split is empty")
    test_x = read_all(test, "test")
    event_shape = tuple(test_x.shape[1:])
    valid_x = read_all(valid, "valid") if valid is not None and len(valid) else torch.zeros(0, *event_shape)
    head = collate_examples([train[i] for i in range(min(len(train), 1000))])
    if tuple(head.shape[1:]) != event_shape:
        raise DataError(f"dataset {name!r}: train examples have shape {tuple(head.shape[1:])}, test examples "
                        f"{event_shape}")
    if binary is None:
        binary = all(bool(((t == 0) | (t == 1)).all()) for t in (head, valid_x, test_x))
    train_split = train if stream else read_all(train, "train")
    return Dataset(name, train=train_split, valid=valid_x, test=test_x,
                   labels={"train": None, "valid": None, "test": None}, event_shape=event_shape,
                   binary=binary, note="train split streamed" if stream else "",
                   loader_workers=loader_workers)


class TrainSplit:
    """The trainer's view of the train split: its size, a head of examples, and an epoch's batches in a
    given order, sliced from a tensor on the device or streamed from a torch Dataset."""

    def __init__(self, dataset: Dataset, device: torch.device):
        self.device, self.workers = device, dataset.loader_workers
        self.source = dataset.train if dataset.streamed else dataset.train.to(device)

    def __len__(self) -> int:
        return len(self.source)

    @property
    def in_memory(self) -> bool:
        return isinstance(self.source, torch.Tensor)

    def head(self, n: int) -> torch.Tensor:
        """The first n examples, as a tensor on the device."""
        if self.in_memory:
            return self.source[:n]
        return collate_examples([self.source[i] for i in range(min(n, len(self)))]).to(self.device)

    def batches(self, order: torch.Tensor, batch_size: int, start: int = 0) -> Iterator[torch.Tensor]:
        """The batches order[b * size:(b + 1) * size] for b = start, start + 1, ..."""
        chunks = [order[b:b + batch_size] for b in range(start * batch_size, len(order), batch_size)]
        if self.in_memory:
            yield from (self.source[idx] for idx in chunks)
            return
        # its own generator: a DataLoader draws a base seed for its workers, which would otherwise move
        # torch's global RNG (and make a streamed run differ from the same run in memory)
        loader = DataLoader(self.source, batch_sampler=[c.tolist() for c in chunks],
                            num_workers=self.workers,
                            collate_fn=collate_examples, pin_memory=self.device.type == "cuda",
                            generator=torch.Generator().manual_seed(len(order)))
        for batch in loader:
            yield batch.to(self.device, non_blocking=True)
