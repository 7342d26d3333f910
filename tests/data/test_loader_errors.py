"""A registered loader that looks an option value up and misses is one line naming the dataset."""

import pytest

from rdvae.data import DataError, load_dataset
from rdvae.registry import DATASETS

KINDS = {"small": 10}


def test_a_loader_key_error_is_a_data_error_naming_the_dataset_and_the_options():
    def loader(size: str = "small"):
        return KINDS[size]   # KeyError for an unknown size

    DATASETS.register("lookup-test", loader, replace=True)
    try:
        with pytest.raises(DataError, match=r"dataset 'lookup-test': its loader raised KeyError 'huge' "
                                            r"\(size='huge'\)"):
            load_dataset("lookup-test", size="huge")
    finally:
        DATASETS._entries.pop("lookup-test", None)
