"""The parsed-array cache: hit on the second load, miss when a source file changes."""

import os
import sys
import types

import numpy as np
import pytest
import torch

from rdvae.data import cache, formats, load_dataset


@pytest.fixture(autouse=True)
def user_cache(monkeypatch, tmp_path):
    """The user's cache folder of these tests: $XDG_CACHE_HOME/rdvae (platformdirs, when installed,
    honours it on Linux too); the parsed arrays go to its parsed/ folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "rdvae" / "parsed"


@pytest.fixture
def count_amat_parses(monkeypatch):
    calls = []
    real = formats.read_amat

    def counting(path, rows, cols):
        calls.append(path.name)
        return real(path, rows, cols)

    monkeypatch.setattr(formats, "read_amat", counting)
    return calls


def test_second_load_reads_the_cache(tiny_amat, count_amat_parses, user_cache):
    first = load_dataset("binarized-mnist", root=tiny_amat.root)
    assert len(count_amat_parses) == 3
    second = load_dataset("binarized-mnist", root=tiny_amat.root)
    assert len(count_amat_parses) == 3  # not parsed again
    assert torch.equal(first.train, second.train) and torch.equal(first.test, second.test)
    entries = list((user_cache / "binarized-mnist").glob("*/*.npy"))
    assert sorted(p.stem for p in entries) == ["x_test", "x_train", "x_valid"]


def test_changed_file_is_parsed_again(tiny_amat, count_amat_parses, user_cache):
    load_dataset("binarized-mnist", root=tiny_amat.root)
    path = tiny_amat.folder / "binarized_mnist_test.amat"
    path.write_bytes(b"1 1 1 1 1 1\n" * 2)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    ds = load_dataset("binarized-mnist", root=tiny_amat.root)
    assert len(count_amat_parses) == 6
    assert bool((ds.test == 1).all())
    assert len(list((user_cache / "binarized-mnist").iterdir())) == 1  # stale entry gone


def test_cache_is_never_pickled(tiny_news, user_cache):
    load_dataset("20newsgroups", root=tiny_news.root)
    stored = list((user_cache / "20newsgroups").glob("*/*.npy"))
    assert stored
    for path in stored:
        np.load(path, allow_pickle=False)  # raises if an object array was stored


def test_rdvae_cache_env(tiny_amat, tmp_path, monkeypatch):
    monkeypatch.setenv("RDVAE_CACHE", str(tmp_path / "parsed"))
    load_dataset("binarized-mnist", root=tiny_amat.root)
    assert list((tmp_path / "parsed" / "binarized-mnist").glob("*/x_train.npy"))
    assert not (tiny_amat.folder / ".rdvae-cache").exists()
    assert not (tiny_amat.root / "parsed").exists()


def test_read_only_data_folder_is_left_untouched(tiny_amat, user_cache):
    before = sorted(p.name for p in tiny_amat.folder.iterdir())
    tiny_amat.folder.chmod(0o555)
    try:
        load_dataset("binarized-mnist", root=tiny_amat.root)
        assert sorted(p.name for p in tiny_amat.folder.iterdir()) == before
    finally:
        tiny_amat.folder.chmod(0o755)
    assert list((user_cache / "binarized-mnist").glob("*/x_train.npy"))


def test_writable_data_folder_gets_no_cache_folder(tiny_amat, user_cache):
    """The data folder may be shared: the parsed arrays go to the user's cache, never beside the data."""
    before = sorted(p.name for p in tiny_amat.folder.iterdir())
    load_dataset("binarized-mnist", root=tiny_amat.root)
    assert sorted(p.name for p in tiny_amat.folder.iterdir()) == before
    assert list((user_cache / "binarized-mnist").glob("*/x_train.npy"))


def test_user_cache_folder_without_platformdirs(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "platformdirs", None)   # `import platformdirs` raises ImportError
    assert cache.user_cache_dir() == tmp_path / "xdg" / "rdvae"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache.user_cache_dir() == tmp_path / "home" / ".cache" / "rdvae"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")   # not absolute: ignored, as XDG says
    assert cache.user_cache_dir() == tmp_path / "home" / ".cache" / "rdvae"


def test_user_cache_folder_from_platformdirs(monkeypatch, tmp_path, tiny_amat):
    fake = types.ModuleType("platformdirs")
    fake.user_cache_dir = lambda name: str(tmp_path / "platform" / name)
    monkeypatch.setitem(sys.modules, "platformdirs", fake)
    load_dataset("binarized-mnist", root=tiny_amat.root)
    assert list((tmp_path / "platform" / "rdvae" / "parsed" / "binarized-mnist").glob("*/x_train.npy"))


def test_unreadable_cache_entry_is_rebuilt(tiny_amat, count_amat_parses, user_cache):
    load_dataset("binarized-mnist", root=tiny_amat.root)
    (entry,) = (user_cache / "binarized-mnist").iterdir()
    (entry / "x_valid.npy").write_bytes(b"not an npy file")
    ds = load_dataset("binarized-mnist", root=tiny_amat.root)
    assert len(count_amat_parses) == 6 and ds.valid.shape == (2, 1, 2, 3)
    assert cache.load(entry.parent, entry.name) is not None
