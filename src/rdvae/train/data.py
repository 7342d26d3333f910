"""The data a run trains on: loaded from its config (or given), checked against what was recorded,
and checked against the decoder's likelihood."""

from __future__ import annotations

from pathlib import Path

import torch

from ..data import DataError, Dataset, load_dataset
from ..data.files import is_data_path
from .config import ConfigError, TrainConfig


def same_dataset(configured: str, name: str) -> bool:
    if is_data_path(configured):
        return is_data_path(name) and Path(name).expanduser().resolve() == Path(configured)
    return configured == name


def dataset_for(config: TrainConfig, dataset: Dataset | None = None, record: bool = True) -> Dataset:
    """The config's Dataset (or the one given, which must carry the config's dataset name), its
    fingerprint recorded in the config (record) or verified against the recorded one."""
    if dataset is None:
        dataset = load_dataset(config.dataset, binarize=config.binarize, **config.data)
    elif not same_dataset(config.dataset, dataset.name):
        raise ConfigError(f"the dataset given is named {dataset.name!r} but the config's dataset is "
                          f"{config.dataset!r}; set config.dataset to the dataset's name")
    if dataset.fingerprint is not None:
        if config.dataset_sha256 is None and record:
            config.dataset_sha256 = dataset.fingerprint
        elif config.dataset_sha256 is not None and config.dataset_sha256 != dataset.fingerprint:
            raise DataError(
                f"{config.dataset} changed since the run was trained: SHA-256 {dataset.fingerprint[:16]}... "
                f"now, {config.dataset_sha256[:16]}... recorded in config.json. Restore the data the run "
                "was trained on, or train a new run on the new data")
    return dataset


def verify_recorded_data(config: TrainConfig) -> None:
    """For a run that is not loaded again (a finished run asked to resume): the data file's SHA-256
    against the recorded one, without loading it."""
    from ..data.files import source_sha256
    from ..data.registry import is_path

    if config.dataset_sha256 is not None and is_path(config.dataset):
        now = source_sha256(config.dataset)
        if now != config.dataset_sha256:
            raise DataError(
                f"{config.dataset} changed since the run was trained: SHA-256 {now[:16]}... now, "
                f"{config.dataset_sha256[:16]}... recorded in config.json. Restore the data the run was "
                "trained on, or train a new run on the new data")


@torch.no_grad()
def check_likelihood(model, dataset: Dataset, train_x: torch.Tensor, examples: int = 256) -> None:
    """ConfigError when training examples lie outside the support of the decoder's distribution
    (e.g. grey levels under a Bernoulli decoder: D would not be a log-likelihood). Decoders whose
    distribution declares no support are not checked."""
    x = dataset.train_transform(train_x[:examples], torch.Generator().manual_seed(0))
    latent_dim = getattr(model.marginal, "latent_dim", None)
    if latent_dim is None or len(x) == 0:
        return
    try:
        dist = model.decoder(torch.zeros(1, latent_dim, device=x.device))
        support = dist.support
        inside = support.check(x.to(dist.mean.dtype) if hasattr(dist, "mean") else x)
    except Exception:  # noqa: BLE001 - a distribution without a declared support is not checked
        return
    inside = inside.reshape(len(x), -1).all(-1) if inside.dim() > 1 else inside
    bad = int((~inside).sum())
    if bad:
        values = torch.unique(x)
        shown = ", ".join(f"{v:g}" for v in values[:5].tolist()) + (", ..." if len(values) > 5 else "")
        raise ConfigError(
            f"the decoder's likelihood does not fit the data: {bad} of {len(x)} training examples of "
            f"{dataset.name} lie outside the support of its {type(dist).__name__} "
            f"({support}; data values {shown}). Binary data needs a Bernoulli decoder; grey levels and real "
            "values need a Gaussian one (e.g. family mlp-gauss) or binarization (--binarize dynamic, static "
            "or threshold). Set allow_improper_likelihood=true to train anyway (D is then not a "
            "log-likelihood)")
