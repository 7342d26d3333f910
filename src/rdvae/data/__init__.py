"""Datasets as in-memory tensors: find, download, verify, parse and cache.

    from rdvae.data import load_dataset
    ds = load_dataset("binarized-mnist")   # ds.train, ds.valid, ds.test: float32 tensors

Files live under `root`, else $RDVAE_DATA, else ~/.cache/rdvae (one folder per dataset);
$RDVAE_OFFLINE=1 forbids downloads; $RDVAE_CACHE relocates the parsed-array cache.
"""

from rdvae.data.dataset import Dataset
from rdvae.data.errors import DataError
from rdvae.data.registry import check_dataset_options, dataset_options, load_dataset
from rdvae.data.sources import DatasetSpec, FileSpec, dataset_names, get_spec

__all__ = [
    "DataError",
    "Dataset",
    "DatasetSpec",
    "FileSpec",
    "dataset_names",
    "check_dataset_options",
    "dataset_options",
    "get_spec",
    "load_dataset",
]
