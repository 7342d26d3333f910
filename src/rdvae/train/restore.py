"""Rebuilding a trained run from its directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..data import Dataset
from ..device import resolve_device
from ..protocols import LatentVariableModel
from ..rundir import WEIGHTS, RunDir
from .checkpoint import load_weights
from .config import TrainConfig
from .data import dataset_for
from .loop import build_for_config


@dataclass
class TrainedRun:
    run: RunDir
    config: TrainConfig
    model: LatentVariableModel
    dataset: Dataset


def load_run(path: str | Path, device: str = "auto", dataset: Dataset | None = None,
             model=None) -> TrainedRun:
    """Config, model with its saved weights (eval mode) and dataset of a run directory. The plugins the
    config records are imported; a data file's SHA-256 is verified. `dataset` and `model` replace
    what the config names (e.g. a model object that was passed to train())."""
    run = RunDir(path)
    config = TrainConfig.from_dict(run.read_config(), data_given=dataset is not None)
    if not (run / WEIGHTS).exists():
        raise FileNotFoundError(f"{run.path} has no {WEIGHTS} yet: train it (or resume it) first")
    ds = dataset_for(config, dataset, record=False)
    dev = resolve_device(device)
    torch.manual_seed(config.seed)
    model = (model if model is not None else build_for_config(config, ds.event_shape)).to(dev)
    load_weights(run, model, dev)
    model.eval()
    return TrainedRun(run, config, model, ds)
