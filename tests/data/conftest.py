"""Fixtures for rdvae.data: a hermetic environment and tiny synthetic dataset files."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from rdvae.data import sources

REAL_DATA = os.environ.get("RDVAE_DATA")
REAL_CACHE = os.environ.get("RDVAE_CACHE")


@pytest.fixture(autouse=True)
def hermetic(monkeypatch, tmp_path):
    """No dataset environment variables, a private home, and no network."""
    for var in ("RDVAE_DATA", "RDVAE_CACHE", "RDVAE_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def idx_bytes(array: np.ndarray) -> bytes:
    """An uncompressed IDX file of unsigned bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def amat_bytes(array: np.ndarray) -> bytes:
    return "".join(" ".join(map(str, row)) + "\n" for row in array.reshape(len(array), -1)).encode()


def triples_bytes(counts: np.ndarray) -> bytes:
    """1-based 'doc word count' lines of the non-zero entries of a [docs, words] matrix."""
    docs, words = np.nonzero(counts)
    return "".join(
        f"{d + 1} {w + 1} {counts[d, w]}\n" for d, w in zip(docs, words, strict=True)
    ).encode()


def tgz_bytes(members: dict[str, bytes], extra: list[tarfile.TarInfo] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info in extra:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclasses.dataclass
class Tiny:
    """A tiny dataset written under `root`, registered under the real dataset's name."""

    name: str
    root: Path
    spec: sources.DatasetSpec
    files: dict[str, bytes]
    arrays: dict[str, np.ndarray]

    @property
    def folder(self) -> Path:
        return self.root / self.spec.folder

    def write(self, skip: tuple[str, ...] = ()) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            if name not in skip:
                (self.folder / name).write_bytes(data)


def _register(monkeypatch, name: str, **changes) -> sources.DatasetSpec:
    """A tiny variant of a real spec; its files keep no pinned SHA-256 (they are not the real files)
    unless the changes give files."""
    unpinned = tuple(dataclasses.replace(f, sha256=None) for f in sources.REGISTRY[name].files)
    changes.setdefault("files", unpinned)
    spec = dataclasses.replace(sources.REGISTRY[name], **changes)
    monkeypatch.setitem(sources.REGISTRY, name, spec)
    return spec


@pytest.fixture
def tiny_mnist(monkeypatch, tmp_path) -> Tiny:
    """MNIST layout: 10 training images of 4x4 (7 train + 3 valid), 3 test images."""
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (10, 4, 4)),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, 10),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (3, 4, 4)),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 3),
    }
    files = {name: gzip.compress(idx_bytes(a), mtime=0) for name, a in arrays.items()}
    real = sources.REGISTRY["mnist"]
    specs = tuple(dataclasses.replace(f, md5=md5(files[f.name]), sha256=None) for f in real.files)
    spec = _register(monkeypatch, "mnist", files=specs, split_sizes=(7, 3, 3), image_shape=(4, 4))
    tiny = Tiny("mnist", tmp_path / "data", spec, files, arrays)
    tiny.write()
    return tiny


@pytest.fixture
def tiny_amat(monkeypatch, tmp_path) -> Tiny:
    """binarized-MNIST layout: 5 / 2 / 2 rows of 2x3 binary images."""
    rng = np.random.default_rng(2)
    arrays = {
        f.name: rng.integers(0, 2, (n, 2, 3))
        for f, n in zip(sources.REGISTRY["binarized-mnist"].files, (5, 2, 2), strict=True)
    }
    files = {name: amat_bytes(a) for name, a in arrays.items()}
    spec = _register(monkeypatch, "binarized-mnist", split_sizes=(5, 2, 2), image_shape=(2, 3))
    tiny = Tiny("binarized-mnist", tmp_path / "data", spec, files, arrays)
    tiny.write()
    return tiny


NEWS = "20news-bydate/matlab/"


@pytest.fixture
def tiny_news(monkeypatch, tmp_path) -> Tiny:
    """20 Newsgroups layout: 6 train / 4 test documents over 8 words, keep the top 5."""
    rng = np.random.default_rng(3)
    train = rng.integers(0, 3, (6, 8)) * (rng.random((6, 8)) < 0.5)
    test = rng.integers(0, 3, (4, 8)) * (rng.random((4, 8)) < 0.5)
    labels = {"train": rng.integers(1, 21, 6), "test": rng.integers(1, 21, 4)}
    members = {
        NEWS + "train.data": triples_bytes(train),
        NEWS + "train.label": "".join(f"{v}\n" for v in labels["train"]).encode(),
        NEWS + "train.map": b"alt.atheism 1\n",
        NEWS + "test.data": triples_bytes(test),
        NEWS + "test.label": "".join(f"{v}\n" for v in labels["test"]).encode(),
        NEWS + "test.map": b"alt.atheism 1\n",
    }
    vocabulary = [f"w{i}" for i in range(8)]
    files = {
        "20news-bydate-matlab.tgz": tgz_bytes(members),
        "vocabulary.txt": "".join(w + "\n" for w in vocabulary).encode(),
    }
    arrays = {"train": train, "test": test, **{f"y_{k}": v for k, v in labels.items()}}
    spec = _register(monkeypatch, "20newsgroups", split_sizes=(6, 0, 4), vocab_size=8, top_words=5)
    tiny = Tiny("20newsgroups", tmp_path / "data", spec, files, arrays)
    tiny.write()
    return tiny


@pytest.fixture
def synth():
    """The file builders above, for tests that craft broken files."""
    import types

    return types.SimpleNamespace(
        md5=md5, idx_bytes=idx_bytes, amat_bytes=amat_bytes, tgz_bytes=tgz_bytes, NEWS=NEWS
    )


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory) -> Path:
    """One parsed-array cache for the whole session (real data is parsed once)."""
    return Path(REAL_CACHE) if REAL_CACHE else tmp_path_factory.mktemp("real-cache")


@pytest.fixture
def real_root(monkeypatch, real_cache) -> Path:
    """$RDVAE_DATA as given when pytest started; skips the test when unset."""
    if not REAL_DATA:
        pytest.skip("RDVAE_DATA is not set")
    monkeypatch.setenv("RDVAE_CACHE", str(real_cache))
    return Path(REAL_DATA)
