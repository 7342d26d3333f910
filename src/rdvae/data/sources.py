"""Dataset specifications: names, folders, files, mirrors, checksums and split sizes.

A :class:`DatasetSpec` is a frozen value; tests build tiny variants of the real specs
with :func:`dataclasses.replace` and put them in :data:`REGISTRY`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rdvae.data.errors import DataError

DEFAULT_ROOT = Path("~/.cache/rdvae")


@dataclass(frozen=True)
class FileSpec:
    """One source file: canonical name, mirrors tried in order, optional published md5."""

    name: str
    urls: tuple[str, ...]
    md5: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """Everything needed to find, verify and parse one dataset.

    kind: "digits" (bundled with scikit-learn), "idx" (MNIST-style gz files),
    "amat" (Larochelle & Murray text files) or "bow" (20 Newsgroups bag of words).
    split_sizes: (train, valid, test) number of examples after splitting.
    """

    name: str
    kind: str
    folder: str = ""
    files: tuple[FileSpec, ...] = ()
    split_sizes: tuple[int, int, int] = (0, 0, 0)
    image_shape: tuple[int, int] | None = None
    vocab_size: int = 0
    top_words: int = 0

    @property
    def natively_binary(self) -> bool:
        return self.kind == "amat"

    @property
    def counts(self) -> bool:
        return self.kind == "bow"

    def file(self, name: str) -> FileSpec:
        return next(f for f in self.files if f.name == name)


IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
MNIST_MD5 = (
    "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "d53e105ee54ea40749a09fcbcd1e9432",
    "9fb629c4189551a2d022fa330f9573f3",
    "ec29112dd5afa0611ce80d1b7f02629c",
)
FASHION_MD5 = (
    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "25c81989df183df01b3e8a0aad5dffbe",
    "bef4ecab320f06d8554ea6380940ec79",
    "bb300cfdad3c16e7a12a480ee83cd310",
)
AMAT_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"
NEWS_URL = "http://qwone.com/~jason/20Newsgroups/"


def _idx_files(mirrors: tuple[str, ...], md5s: tuple[str, ...]) -> tuple[FileSpec, ...]:
    return tuple(
        FileSpec(name, tuple(m + name for m in mirrors), md5)
        for name, md5 in zip(IDX_FILES, md5s, strict=True)
    )


REGISTRY: dict[str, DatasetSpec] = {
    "digits": DatasetSpec("digits", "digits", split_sizes=(1297, 250, 250), image_shape=(8, 8)),
    "mnist": DatasetSpec(
        "mnist",
        "idx",
        "mnist",
        _idx_files(MNIST_MIRRORS, MNIST_MD5),
        split_sizes=(50000, 10000, 10000),
        image_shape=(28, 28),
    ),
    "fashion-mnist": DatasetSpec(
        "fashion-mnist",
        "idx",
        "fashion_mnist",
        _idx_files(FASHION_MIRRORS, FASHION_MD5),
        split_sizes=(50000, 10000, 10000),
        image_shape=(28, 28),
    ),
    "binarized-mnist": DatasetSpec(
        "binarized-mnist",
        "amat",
        "binarized_mnist",
        tuple(
            FileSpec(f"binarized_mnist_{s}.amat", (f"{AMAT_URL}binarized_mnist_{s}.amat",))
            for s in ("train", "valid", "test")
        ),
        split_sizes=(50000, 10000, 10000),
        image_shape=(28, 28),
    ),
    "20newsgroups": DatasetSpec(
        "20newsgroups",
        "bow",
        "20newsgroups",
        (
            FileSpec("20news-bydate-matlab.tgz", (NEWS_URL + "20news-bydate-matlab.tgz",)),
            FileSpec("vocabulary.txt", (NEWS_URL + "vocabulary.txt",)),
        ),
        split_sizes=(11269, 0, 7505),
        vocab_size=61188,
        top_words=10000,
    ),
}

ALIASES = {
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "binarized_mnist": "binarized-mnist",
    "binary-mnist": "binarized-mnist",
    "binary_mnist": "binarized-mnist",
    "20news": "20newsgroups",
    "20-newsgroups": "20newsgroups",
}


def dataset_names() -> list[str]:
    """Canonical names of every registered dataset."""
    return sorted(REGISTRY)


def get_spec(name: str) -> DatasetSpec:
    """The spec for a canonical name or alias (case-insensitive)."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in REGISTRY:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(dataset_names())}")
    return REGISTRY[key]


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The folder of dataset folders: root, else $RDVAE_DATA, else ~/.cache/rdvae."""
    chosen = root if root is not None else os.environ.get("RDVAE_DATA") or DEFAULT_ROOT
    return Path(chosen).expanduser().resolve()
