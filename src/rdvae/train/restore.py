"""Rebuilding a trained run from its directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data import Dataset
from ..device import resolve_device
from ..engine.checkpoint import load_weights
from ..protocols import LatentVariableModel
from ..rundir import WEIGHTS, RunDir
from .config import TrainConfig, read_run_config
from .data import dataset_for
from .loop import build_for_config


@dataclass
class TrainedRun:
    run: RunDir
    config: TrainConfig
    model: LatentVariableModel
    dataset: Dataset
    changed_plugins: list[str] = field(default_factory=list)   # plugins whose code changed (accepted)


def load_run(path: str | Path, device: str = "auto", dataset: Dataset | None = None,
             model=None, accept_plugin_changes: bool = False) -> TrainedRun:
    """Config, model with its saved weights (eval mode) and dataset of a run directory. The data's and
    the plugins' fingerprints are verified. Opening a run runs none of its code unasked: the plugins
    its config names are imported only when this process has imported them already (import your plugin
    module first, or pass it to rdvae.plugins.load_plugins(..., named=True)), or when
    rdvae.plugins.trust_plugins() was called (the CLI's --plugin and --trust-plugins); a plugin whose
    code changed since is refused unless accept_plugin_changes. `dataset` and `model` replace what the
    config names (e.g. a model object that was passed to train())."""
    run = RunDir(path)
    config, changed = read_run_config(run, dataset is not None, accept_plugin_changes)
    if not (run / WEIGHTS).exists():
        raise FileNotFoundError(f"{run.path} has no {WEIGHTS} yet: train it (or resume it) first")
    ds = dataset_for(config, dataset, record=False)
    dev = resolve_device(device)
    torch.manual_seed(config.seed)
    model = (model if model is not None else build_for_config(config, ds.event_shape)).to(dev)
    load_weights(run, model, dev)
    model.eval()
    return TrainedRun(run, config, model, ds, changed)
