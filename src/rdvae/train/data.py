"""The data a run trains on: loaded from its config (or given), checked against what was recorded,
and checked against the decoder's likelihood."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from ..data import DataError, Dataset, load_dataset
from ..data.dataset import binarized
from ..data.registry import is_path
from .config import AUTO, ConfigError, TrainConfig


def same_dataset(configured: str, name: str) -> bool:
    """Whether a Dataset named `name` is the config's dataset (data paths compared resolved, both sides)."""
    if is_path(configured):
        return is_path(name) and Path(name).expanduser().resolve() == Path(configured).expanduser().resolve()
    return configured == name


def dataset_for(config: TrainConfig, dataset: Dataset | None = None, record: bool = True) -> Dataset:
    """The config's Dataset (or the one given, which must carry the config's dataset name), its
    fingerprint recorded in the config (record) or verified against the recorded one."""
    if dataset is None:   # binarize "auto" loads the data as they are (resolve_auto_binarize decides)
        binarize = None if config.binarize == AUTO else config.binarize
        dataset = load_dataset(config.dataset, binarize=binarize, **config.data)
    elif not same_dataset(config.dataset, dataset.name):
        raise ConfigError(f"the dataset given is named {dataset.name!r} but the config's dataset is "
                          f"{config.dataset!r}; set config.dataset to the dataset's name")
    if dataset.fingerprint is not None:
        if config.dataset_sha256 is None and record:
            config.dataset_sha256 = dataset.fingerprint
        else:
            check_fingerprint(config, dataset.fingerprint)
    return dataset


def check_fingerprint(config: TrainConfig, now: str) -> None:
    """DataError when the data's SHA-256 `now` is not the one config.json recorded (if any)."""
    if config.dataset_sha256 is not None and config.dataset_sha256 != now:
        raise DataError(
            f"{config.dataset} changed since the run was trained: SHA-256 {now[:16]}... now, "
            f"{config.dataset_sha256[:16]}... recorded in config.json. Restore the data the run was "
            "trained on, or train a new run on the new data")


def verify_recorded_data(config: TrainConfig) -> None:
    """For a run that is not loaded again (a finished run asked to resume): the data file's SHA-256
    against the recorded one, without loading it."""
    from ..data.files import source_sha256

    if config.dataset_sha256 is not None and is_path(config.dataset):
        check_fingerprint(config, source_sha256(config.dataset))


@torch.no_grad()
def support_fits(model, x: torch.Tensor) -> bool | None:
    """Whether every example of x lies in the support of the decoder's distribution (None: the
    distribution declares no support). The probe runs in eval mode without gradients, so that it leaves
    no trace in the model (BatchNorm running statistics, step counters)."""
    latent_dim = getattr(model.marginal, "latent_dim", None)
    if latent_dim is None or len(x) == 0:
        return None
    was_training = model.decoder.training
    model.decoder.eval()
    try:
        with torch.no_grad():
            dist = model.decoder(torch.zeros(1, latent_dim, device=x.device))
        inside = dist.support.check(x)
    except Exception:  # noqa: BLE001 - a distribution without a declared support is not checked
        return None
    finally:
        model.decoder.train(was_training)
    return bool(inside.all())


def resolve_auto_binarize(config: TrainConfig, model, dataset: Dataset, progress: bool = False) -> Dataset:
    """binarize="auto": dynamic binarization when the data are grey levels in [0, 1] that the decoder's
    binary likelihood cannot model, else none; the choice replaces "auto" in the config (so config.json
    records it) and the dataset to train on is returned."""
    if config.binarize != AUTO:
        return dataset
    choice = None
    if not (dataset.binary or dataset.streamed or dataset.vocabulary is not None) and len(dataset.train):
        x = dataset.train[:256]
        if (float(x.min()) >= 0 and float(x.max()) <= 1 and support_fits(model, x) is False
                and support_fits(model, x.round()) is True):
            choice = "dynamic"
    config.binarize = choice
    if choice is None:
        return dataset
    if progress:
        print(f"binarize=auto: {dataset.name} holds grey levels and the decoder's likelihood is binary, so "
              "training batches are binarized afresh each time (dynamic; valid and test once, seeded); "
              "recorded in config.json", file=sys.stderr)
    return binarized(dataset, choice)


@torch.no_grad()
def check_likelihood(model, dataset: Dataset, train_x: torch.Tensor, examples: int = 256) -> None:
    """ConfigError when training examples lie outside the support of the decoder's distribution
    (e.g. grey levels under a Bernoulli decoder: D would not be a log-likelihood). Decoders whose
    distribution declares no support are not checked."""
    x = dataset.train_transform(train_x[:examples], torch.Generator().manual_seed(0))
    if support_fits(model, x) is not False:
        return
    values = torch.unique(x)
    shown = ", ".join(f"{v:g}" for v in values[:5].tolist()) + (", ..." if len(values) > 5 else "")
    raise ConfigError(
        f"the decoder's likelihood does not fit the data: training examples of {dataset.name} lie outside "
        f"the support of its distribution (data values {shown}). Binary data needs a Bernoulli decoder; "
        "grey levels and real values need a Gaussian one (e.g. family mlp-gauss) or binarization (--binarize "
        "dynamic, static or threshold). Set allow_improper_likelihood=true to train anyway (D is then not a "
        "log-likelihood)")
