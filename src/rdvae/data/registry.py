"""Which data a run uses: a registered dataset (rdvae's own or a plugin's `register_dataset`) or a
path (.npy / .npz array, or a folder of images; rdvae.data.files). One entry point, load_dataset."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, did_you_mean
from ..registry import DATASETS, builder_options
from .dataset import Dataset
from .errors import DataError
from .files import is_data_path, load_file_dataset
from .sources import REGISTRY as SPECS


def is_path(name: str) -> bool:
    """A data path rather than a registered dataset (a registered name wins)."""
    return name not in DATASETS and is_data_path(name)


def dataset_options(name: str) -> dict:
    """The options (`data.*`) the loader of `name` takes, with their defaults."""
    if is_path(name):
        return {k: v for k, v in builder_options(load_file_dataset, 1).items() if k != "binarize"}
    if name in DATASETS:
        return {k: v for k, v in DATASETS.options(name).items() if k != "binarize"}
    return {}


def check_dataset_options(name: str, options: dict, binarize: str | None = None) -> str:
    """Validate a run's dataset and its options; returns the name to record (a data path made
    absolute). DataError for an unknown name, a missing path or an option the loader does not take."""
    if is_path(name):
        path = Path(name).expanduser().resolve()
        if not path.exists():
            raise DataError(f"dataset {name!r}: {path} does not exist (a dataset is a registered name, a "
                            ".npy / .npz file or a folder of images)")
        loader = load_file_dataset
        accepted = builder_options(loader, 1)
        where, recorded = f"data file {path}", str(path)
    elif name in DATASETS:
        accepted, where, recorded = DATASETS.options(name), f"dataset {name!r}", name
    elif name.strip().lower() in SPECS:  # a spec added at run time (tests' tiny variants)
        return name
    else:
        raise DataError(f"unknown dataset {name!r}{did_you_mean(name, DATASETS.names(aliases=True))}; "
                        f"registered: {', '.join(DATASETS.names())}; or give a path to a .npy / .npz file "
                        "or a folder of images, or register a loader with rdvae.register_dataset in a "
                        "--plugin")
    if "**" not in accepted:
        unknown = [k for k in options if k not in accepted or k == "binarize"]
        if unknown:
            valid = ", ".join(k for k in accepted if k != "binarize") or "none"
            hints = ", ".join(f"{k!r}{did_you_mean(k, accepted)}" for k in unknown)
            raise DataError(f"unknown data option(s) of {where}: {hints}; valid: {valid}")
        if binarize is not None and "binarize" not in accepted:
            raise DataError(f"{where} takes no binarize option (got {binarize!r}); use binarize=None")
    return recorded


def load_dataset(name: str, binarize: str | None = None, **options) -> Dataset:
    """The Dataset of a registered name or a data path, its loader given `options` (and `binarize`
    when not None)."""
    kwargs = dict(options)
    if binarize is not None:
        kwargs["binarize"] = binarize
    if is_path(name):
        check_dataset_options(name, options, binarize)
        return load_file_dataset(name, **kwargs)
    if name not in DATASETS and name.strip().lower() in SPECS:
        from .load import load_spec_dataset

        return load_spec_dataset(name, **kwargs)
    check_dataset_options(name, options, binarize)
    try:
        dataset = DATASETS[name](**kwargs)
    except (DataError, ConfigError):
        raise
    except (ValueError, TypeError) as err:
        raise DataError(f"dataset {name!r}: {err}") from err
    except LookupError as err:   # e.g. a loader looking an option value up in a dict: KeyError 'x'
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "no options"
        raise DataError(f"dataset {name!r}: its loader raised {type(err).__name__} {err} ({given}); a "
                        "loader rejects an option value by raising ValueError naming it") from err
    if not isinstance(dataset, Dataset):
        raise DataError(f"the loader of dataset {name!r} returned {type(dataset).__name__}; a loader "
                        "registered with register_dataset must return an rdvae.data.Dataset")
    return dataset
