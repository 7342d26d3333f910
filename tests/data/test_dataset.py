"""The Dataset value, the registry and binarization, on the bundled digits."""

import pytest
import torch

from rdvae.data import DataError, Dataset, dataset_names, get_spec, load_dataset


def test_registry_names_and_aliases():
    assert dataset_names() == sorted(
        ["digits", "mnist", "fashion-mnist", "binarized-mnist", "20newsgroups"]
    )
    assert get_spec("fashion_mnist").name == "fashion-mnist"
    assert get_spec("binarized_mnist").name == "binarized-mnist"
    assert get_spec("binary-mnist").name == "binarized-mnist"
    with pytest.raises(DataError, match="unknown dataset 'cifar'.*digits"):
        get_spec("cifar")


def test_digits_splits_and_range():
    ds = load_dataset("digits")
    assert isinstance(ds, Dataset) and ds.name == "digits"
    assert [len(ds.split(s)) for s in ("train", "valid", "test")] == [1297, 250, 250]
    assert ds.event_shape == (1, 8, 8) and ds.train.shape[1:] == (1, 8, 8)
    assert ds.train.dtype == torch.float32
    all_x = torch.cat([ds.train, ds.valid, ds.test])
    assert all_x.min() == 0 and all_x.max() == 1
    assert not ds.binary and ds.binarize is None
    assert ds.labels["train"].dtype == torch.int64 and len(ds.labels["test"]) == 250
    assert set(ds.labels["train"].tolist()) == set(range(10))
    assert "digits" in ds.describe() and "1297" in ds.describe()
    again = load_dataset("digits")
    assert torch.equal(ds.valid, again.valid)  # the split is fixed
    with pytest.raises(DataError, match="unknown split"):
        ds.split("validation")


def test_digits_split_is_the_documented_permutation():
    import numpy as np
    from sklearn.datasets import load_digits

    order = np.random.default_rng(0).permutation(1797)
    images = load_digits().images[order] / 16
    ds = load_dataset("digits")
    assert np.allclose(ds.test.numpy()[:, 0], images[1547:])
    assert np.allclose(ds.valid.numpy()[:, 0], images[1297:1547])


def _is_binary(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


def test_static_binarization_is_deterministic_and_binary():
    a = load_dataset("digits", binarize="static", seed=3)
    b = load_dataset("digits", binarize="static", seed=3)
    c = load_dataset("digits", binarize="static", seed=4)
    assert a.binary and a.binarize == "static"
    for split in ("train", "valid", "test"):
        assert _is_binary(a.split(split))
        assert torch.equal(a.split(split), b.split(split))
    assert not torch.equal(a.train, c.train)
    assert torch.equal(a.train_transform(a.train), a.train)  # nothing more to do per batch
    # Each pixel is one Bernoulli draw of its grey level: means agree.
    grey = load_dataset("digits")
    assert abs(a.train.mean() - grey.train.mean()) < 0.01


def test_dynamic_binarization_resamples_train_only():
    ds = load_dataset("digits", binarize="dynamic", seed=0)
    grey = load_dataset("digits")
    static = load_dataset("digits", binarize="static", seed=0)
    assert ds.binary and torch.equal(ds.train, grey.train)
    assert torch.equal(ds.valid, static.valid) and torch.equal(ds.test, static.test)
    batch = ds.train[:64]
    one = ds.train_transform(batch, torch.Generator().manual_seed(1))
    same = ds.train_transform(batch, torch.Generator().manual_seed(1))
    other = ds.train_transform(batch, torch.Generator().manual_seed(2))
    assert _is_binary(one) and torch.equal(one, same) and not torch.equal(one, other)
    assert "dynamic" in ds.describe()


def test_threshold_binarization():
    ds = load_dataset("digits", binarize="threshold")
    grey = load_dataset("digits")
    assert ds.binary and torch.equal(ds.test, (grey.test > 0.5).float())


def test_unknown_binarize_lists_choices():
    with pytest.raises(DataError, match="'static', 'dynamic', 'threshold'"):
        load_dataset("digits", binarize="stochastic")


@pytest.mark.parametrize(
    ("name", "reason"), [("binarized-mnist", "already binary"), ("20newsgroups", "word counts")]
)
def test_binarize_rejected_for_binary_and_count_data(name, reason):
    with pytest.raises(DataError, match=reason):
        load_dataset(name, binarize="static")


def test_padding_adds_zero_borders_and_keeps_the_images():
    plain, padded = load_dataset("digits"), load_dataset("digits", pad=4)
    assert padded.event_shape == (1, 16, 16) and padded.train.shape[1:] == (1, 16, 16)
    assert torch.equal(padded.test[:, :, 4:12, 4:12], plain.test)
    border = padded.train.clone()
    border[:, :, 4:12, 4:12] = 0
    assert border.abs().max() == 0
    with pytest.raises(DataError, match="pad must be an integer >= 0"):
        load_dataset("digits", pad=-1)
