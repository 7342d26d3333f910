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
    """One source file: canonical name, mirrors tried in order, its published md5 (when there is
    one) and its SHA-256 (pinned from a verified copy, so a single flipped bit is caught)."""

    name: str
    urls: tuple[str, ...]
    md5: str | None = None
    sha256: str | None = None


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


# SHA-256 of each file, by dataset folder and name (computed from verified copies)
SHA256 = {
    ("20newsgroups", "20news-bydate-matlab.tgz"):
        "6e27c7c21fdf39f8461f7ad38b384eb45fa374310d47b6fa0ba450bb126f62b8",
    ("20newsgroups", "vocabulary.txt"):
        "3c0f0d64a814ba8836334a0f23925cef751fb3636baea55772f1f8ede4b791bc",
    ("binarized_mnist", "binarized_mnist_test.amat"):
        "e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c",
    ("binarized_mnist", "binarized_mnist_train.amat"):
        "ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d",
    ("binarized_mnist", "binarized_mnist_valid.amat"):
        "1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2",
    ("fashion_mnist", "t10k-images-idx3-ubyte.gz"):
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    ("fashion_mnist", "t10k-labels-idx1-ubyte.gz"):
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    ("fashion_mnist", "train-images-idx3-ubyte.gz"):
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    ("fashion_mnist", "train-labels-idx1-ubyte.gz"):
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    ("mnist", "t10k-images-idx3-ubyte.gz"):
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    ("mnist", "t10k-labels-idx1-ubyte.gz"):
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ("mnist", "train-images-idx3-ubyte.gz"):
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    ("mnist", "train-labels-idx1-ubyte.gz"):
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
}


def _idx_files(folder: str, mirrors: tuple[str, ...], md5s: tuple[str, ...]) -> tuple[FileSpec, ...]:
    return tuple(
        FileSpec(name, tuple(m + name for m in mirrors), md5, SHA256[folder, name])
        for name, md5 in zip(IDX_FILES, md5s, strict=True)
    )


REGISTRY: dict[str, DatasetSpec] = {
    "digits": DatasetSpec("digits", "digits", split_sizes=(1297, 250, 250), image_shape=(8, 8)),
    "mnist": DatasetSpec(
        "mnist",
        "idx",
        "mnist",
        _idx_files("mnist", MNIST_MIRRORS, MNIST_MD5),
        split_sizes=(50000, 10000, 10000),
        image_shape=(28, 28),
    ),
    "fashion-mnist": DatasetSpec(
        "fashion-mnist",
        "idx",
        "fashion_mnist",
        _idx_files("fashion_mnist", FASHION_MIRRORS, FASHION_MD5),
        split_sizes=(50000, 10000, 10000),
        image_shape=(28, 28),
    ),
    "binarized-mnist": DatasetSpec(
        "binarized-mnist",
        "amat",
        "binarized_mnist",
        tuple(
            FileSpec(f"binarized_mnist_{s}.amat", (f"{AMAT_URL}binarized_mnist_{s}.amat",),
                     sha256=SHA256["binarized_mnist", f"binarized_mnist_{s}.amat"])
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
            FileSpec("20news-bydate-matlab.tgz", (NEWS_URL + "20news-bydate-matlab.tgz",),
                     sha256=SHA256["20newsgroups", "20news-bydate-matlab.tgz"]),
            FileSpec("vocabulary.txt", (NEWS_URL + "vocabulary.txt",),
                     sha256=SHA256["20newsgroups", "vocabulary.txt"]),
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
