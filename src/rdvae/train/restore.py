"""Rebuilding a trained run from its directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..data import Dataset, load_dataset
from ..device import resolve_device
from ..model import VAE
from ..rundir import WEIGHTS, RunDir
from .checkpoint import load_weights
from .config import TrainConfig
from .loop import build_for_config


@dataclass
class TrainedRun:
    run: RunDir
    config: TrainConfig
    model: VAE
    dataset: Dataset


def load_run(path: str | Path, device: str = "auto", dataset: Dataset | None = None) -> TrainedRun:
    """Config, model with its saved weights (eval mode) and dataset of a run directory."""
    run = RunDir(path)
    config = TrainConfig.from_dict(run.read_config())
    if not (run / WEIGHTS).exists():
        raise FileNotFoundError(f"{run.path} has no {WEIGHTS} yet: train it (or resume it) first")
    ds = dataset if dataset is not None else load_dataset(config.dataset, binarize=config.binarize)
    dev = resolve_device(device)
    torch.manual_seed(config.seed)
    model = build_for_config(config, ds.event_shape).to(dev)
    load_weights(run, model, dev)
    model.eval()
    return TrainedRun(run, config, model, ds)
