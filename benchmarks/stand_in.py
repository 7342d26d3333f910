"""The data the training benchmarks use: binarized MNIST when its files are present, else random binary
28x28 images of the same sizes (the speed of a step does not depend on the pixels)."""

from __future__ import annotations

import torch

from rdvae.data import DataError, Dataset, load_dataset


def binarized_mnist_or_random() -> Dataset:
    try:
        return load_dataset("binarized-mnist", download=False)
    except DataError:
        g = torch.Generator().manual_seed(0)
        train = torch.rand(10_000, 1, 28, 28, generator=g).round()
        test = torch.rand(1_000, 1, 28, 28, generator=g).round()
        return Dataset("random binary 28x28", train=train, valid=test[:0], test=test,
                       labels={"train": None, "valid": None, "test": None}, event_shape=(1, 28, 28),
                       binary=True)
