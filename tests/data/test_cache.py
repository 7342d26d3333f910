"""The parsed-array cache: hit on the second load, miss when a source file changes."""

import os

import numpy as np
import pytest
import torch

from rdvae.data import cache, formats, load_dataset


@pytest.fixture
def count_amat_parses(monkeypatch):
    calls = []
    real = formats.read_amat

    def counting(path, rows, cols):
        calls.append(path.name)
        return real(path, rows, cols)

    monkeypatch.setattr(formats, "read_amat", counting)
    return calls


def test_second_load_reads_the_cache(tiny_amat, count_amat_parses):
    first = load_dataset("binarized-mnist", root=tiny_amat.root)
    assert len(count_amat_parses) == 3
    second = load_dataset("binarized-mnist", root=tiny_amat.root)
    assert len(count_amat_parses) == 3  # not parsed again
    assert torch.equal(first.train, second.train) and torch.equal(first.test, second.test)
    entries = list((tiny_amat.folder / ".rdvae-cache").glob("*/*.npy"))
    assert sorted(p.stem for p in entries) == ["x_test", "x_train", "x_valid"]


def test_changed_file_is_parsed_again(tiny_amat, count_amat_parses):
    load_dataset("binarized-mnist", root=tiny_amat.root)
    path = tiny_amat.folder / "binarized_mnist_test.amat"
    path.write_bytes(b"1 1 1 1 1 1\n" * 2)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    ds = load_dataset("binarized-mnist", root=tiny_amat.root)
    assert len(count_amat_parses) == 6
    assert bool((ds.test == 1).all())
    assert len(list((tiny_amat.folder / ".rdvae-cache").iterdir())) == 1  # stale entry gone


def test_cache_is_never_pickled(tiny_news):
    load_dataset("20newsgroups", root=tiny_news.root)
    for path in (tiny_news.folder / ".rdvae-cache").glob("*/*.npy"):
        np.load(path, allow_pickle=False)  # raises if an object array was stored


def test_rdvae_cache_env(tiny_amat, tmp_path, monkeypatch):
    monkeypatch.setenv("RDVAE_CACHE", str(tmp_path / "parsed"))
    load_dataset("binarized-mnist", root=tiny_amat.root)
    assert list((tmp_path / "parsed" / "binarized-mnist").glob("*/x_train.npy"))
    assert not (tiny_amat.folder / ".rdvae-cache").exists()


def test_read_only_data_folder_is_left_untouched(tiny_amat, tmp_path):
    before = sorted(p.name for p in tiny_amat.folder.iterdir())
    tiny_amat.folder.chmod(0o555)
    try:
        load_dataset("binarized-mnist", root=tiny_amat.root)
        assert sorted(p.name for p in tiny_amat.folder.iterdir()) == before
    finally:
        tiny_amat.folder.chmod(0o755)
    fallback = tmp_path / "home" / ".cache" / "rdvae" / "parsed" / "binarized-mnist"
    assert list(fallback.glob("*/x_train.npy"))


def test_unreadable_cache_entry_is_rebuilt(tiny_amat, count_amat_parses):
    load_dataset("binarized-mnist", root=tiny_amat.root)
    (entry,) = (tiny_amat.folder / ".rdvae-cache").iterdir()
    (entry / "x_valid.npy").write_bytes(b"not an npy file")
    ds = load_dataset("binarized-mnist", root=tiny_amat.root)
    assert len(count_amat_parses) == 6 and ds.valid.shape == (2, 1, 2, 3)
    assert cache.load(entry.parent, entry.name) is not None
