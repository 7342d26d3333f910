"""The real datasets under $RDVAE_DATA (skipped when unset or when files are absent)."""

import pytest
import torch

from rdvae.data import formats, get_spec, load_dataset
from rdvae.data.download import md5sum


def _files_or_skip(root, name):
    spec = get_spec(name)
    folder = root / spec.folder
    if not all((folder / f.name).is_file() for f in spec.files):
        pytest.skip(f"{name} files are not under {folder}")
    return spec, folder


def _load_twice(root, name, monkeypatch, parser):
    """Load, then load again with the parser disabled: the second load is the cache's."""
    spec, folder = _files_or_skip(root, name)
    before = sorted(p.name for p in folder.iterdir())
    first = load_dataset(name, root=root, download=False)

    def fail(*args, **kwargs):
        raise AssertionError("parsed again instead of reading the cache")

    monkeypatch.setattr(formats, parser, fail)
    second = load_dataset(name, root=root, download=False)
    assert torch.equal(first.test, second.test)
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written next to data
    return first


def _check_images(ds, binary):
    assert [len(ds.split(s)) for s in ("train", "valid", "test")] == [50000, 10000, 10000]
    assert ds.event_shape == (1, 28, 28) and ds.train.dtype == torch.float32
    assert ds.binary is binary
    for split in ("train", "valid", "test"):
        x = ds.split(split)
        assert x.shape[1:] == (1, 28, 28) and x.min() == 0 and x.max() == 1


def test_binarized_mnist(real_root, monkeypatch):
    ds = _load_twice(real_root, "binarized-mnist", monkeypatch, "read_amat")
    _check_images(ds, binary=True)
    assert bool(((ds.train == 0) | (ds.train == 1)).all())
    assert ds.labels == {"train": None, "valid": None, "test": None}
    assert 0.10 < ds.train.mean() < 0.16  # about 13% of MNIST pixels are on


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_datasets(real_root, monkeypatch, name):
    spec, folder = _files_or_skip(real_root, name)
    for file in spec.files:
        assert md5sum(folder / file.name) == file.md5
    ds = _load_twice(real_root, name, monkeypatch, "read_idx")
    _check_images(ds, binary=False)
    for split in ("train", "valid", "test"):
        assert sorted(ds.labels[split].unique().tolist()) == list(range(10))
    static = load_dataset(name, root=real_root, binarize="static", download=False)
    assert static.binary and bool(((static.valid == 0) | (static.valid == 1)).all())


@pytest.mark.slow  # about 6 s on 2 cores with a cold cache
def test_20newsgroups(real_root, monkeypatch):
    ds = _load_twice(real_root, "20newsgroups", monkeypatch, "read_news_archive")
    assert ds.train.shape == (11269, 10000) and ds.test.shape == (7505, 10000)
    assert ds.valid.shape == (0, 10000) and ds.event_shape == (10000,) and not ds.binary
    assert len(ds.vocabulary) == 10000 and ds.vocabulary[0] == "the"
    assert sorted(ds.labels["train"].unique().tolist()) == list(range(20))
    frequency = (ds.train > 0).sum(0)
    assert bool((frequency[:-1] >= frequency[1:]).all())  # columns by document frequency
    assert ds.train.min() == 0 and bool((ds.train == ds.train.round()).all())
