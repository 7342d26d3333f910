"""load_spec_dataset: find or download the files, parse (or read the cache), build a Dataset."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import numpy as np
import torch

from rdvae.data import cache, formats
from rdvae.data.dataset import SPLITS, Dataset, binarize_split, check_binarize
from rdvae.data.download import check_md5, ensure_files
from rdvae.data.errors import DataError
from rdvae.data.sources import DatasetSpec, FileSpec, data_root, get_spec

SCALE = {"digits": 16.0, "idx": 255.0, "amat": 1.0}
Arrays = dict[str, np.ndarray]


def load_spec_dataset(
    name: str,
    root: str | os.PathLike[str] | None = None,
    binarize: str | None = None,
    download: bool = True,
    seed: int = 0,
    pad: int = 0,
) -> Dataset:
    """Load one of rdvae's own datasets (a DatasetSpec) as in-memory float32 tensors.

    root: folder with one sub-folder per dataset (default $RDVAE_DATA, else ~/.cache/rdvae).
    binarize: None, "static", "dynamic" or "threshold", for grey-level image sets only.
    download: fetch missing files from their mirrors ($RDVAE_OFFLINE=1 forbids it).
    seed: the random stream of static binarization (and of valid/test under "dynamic").
    pad: zero pixels added on each side of every image (after binarization), e.g. 2 for 32 x 32 MNIST.
    """
    spec = get_spec(name)
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise DataError(f"pad must be an integer >= 0 (zero pixels on each side of an image), got {pad!r}")
    if pad and spec.kind == "bow":
        raise DataError(f"{spec.name} holds word counts, which cannot be padded; use pad=0")
    binarize = check_binarize(binarize)
    if binarize is not None and spec.natively_binary:
        raise DataError(
            f"{spec.name} is already binary (a fixed static binarization); use binarize=None"
        )
    if binarize is not None and spec.counts:
        raise DataError(
            f"{spec.name} holds word counts, which cannot be binarized; use binarize=None"
        )
    if spec.kind == "digits":
        arrays = _parse_digits(spec)
    else:
        base = data_root(root)
        paths = ensure_files(spec, base / spec.folder, download, partial(verify_file, spec))
        arrays = cache.cached(spec, base, paths, partial(_verified_parse, spec, paths))
    if spec.kind == "bow":
        return _bow_dataset(spec, arrays)
    return _image_dataset(spec, arrays, binarize, seed, pad)


# ----------------------------------------------------------------------------- parsing


def _parse_digits(spec: DatasetSpec) -> Arrays:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.uint8)
    order = np.random.default_rng(0).permutation(len(images))
    return _split_arrays(images[order], bunch.target[order].astype(np.int64), spec.split_sizes)


def _split_arrays(x: np.ndarray, y: np.ndarray | None, sizes: tuple[int, ...]) -> Arrays:
    bounds = np.cumsum((0, *sizes))
    out: Arrays = {}
    for split, lo, hi in zip(SPLITS, bounds[:-1], bounds[1:], strict=True):
        out[f"x_{split}"] = x[lo:hi]
        if y is not None:
            out[f"y_{split}"] = y[lo:hi]
    return out


def _idx_shape(spec: DatasetSpec, file_name: str) -> tuple[int, ...]:
    n_train, n_valid, n_test = spec.split_sizes
    n = n_train + n_valid if file_name.startswith("train") else n_test
    return (n, *spec.image_shape) if "images" in file_name else (n,)


def _parse_idx(spec: DatasetSpec, paths: dict[str, Path]) -> Arrays:
    def read(file: FileSpec) -> np.ndarray:
        return formats.read_idx(paths[file.name], _idx_shape(spec, file.name))

    train_x, train_y, test_x, test_y = (read(f) for f in spec.files)
    n_train = spec.split_sizes[0]
    out = _split_arrays(train_x, train_y.astype(np.int64), (n_train, len(train_x) - n_train, 0))
    out["x_test"], out["y_test"] = test_x, test_y.astype(np.int64)
    return out


def _parse_amat(spec: DatasetSpec, paths: dict[str, Path]) -> Arrays:
    cols = int(np.prod(spec.image_shape))
    return {
        f"x_{split}": formats.read_amat(paths[file.name], rows, cols).reshape(-1, *spec.image_shape)
        for split, file, rows in zip(SPLITS, spec.files, spec.split_sizes, strict=True)
    }


def _parse_bow(spec: DatasetSpec, paths: dict[str, Path]) -> Arrays:
    archive, vocabulary = (paths[f.name] for f in spec.files)
    words = formats.read_vocabulary(vocabulary, spec.vocab_size)
    sizes = (spec.split_sizes[0], spec.split_sizes[2])
    parsed = formats.check_news(archive, sizes, spec.vocab_size)
    kept = formats.top_words(parsed["train_triples"], spec.vocab_size, spec.top_words)
    out: Arrays = {"word_ids": kept, "vocabulary": np.array([words[i] for i in kept], dtype=str)}
    for split in ("train", "test"):
        triples = formats.restrict(parsed[f"{split}_triples"], kept, spec.vocab_size)
        out[f"{split}_triples"] = triples.astype(np.int32)
        out[f"y_{split}"] = parsed[f"{split}_labels"]
    return out


PARSERS = {"idx": _parse_idx, "amat": _parse_amat, "bow": _parse_bow}


def _verified_parse(spec: DatasetSpec, paths: dict[str, Path]) -> Arrays:
    """Check every file's digest (whenever the files are parsed, i.e. not read from the cache), then parse."""
    for file in spec.files:
        check_md5(file, paths[file.name])
    return PARSERS[spec.kind](spec, paths)


def verify_file(spec: DatasetSpec, file: FileSpec, path: Path) -> None:
    """Content check of one freshly downloaded file (md5 is checked by the downloader)."""
    if spec.kind == "idx":
        formats.read_idx(path, _idx_shape(spec, file.name))
    elif spec.kind == "amat":
        index = [f.name for f in spec.files].index(file.name)
        formats.read_amat(path, spec.split_sizes[index], int(np.prod(spec.image_shape)))
    elif file.name.endswith(".txt"):
        formats.read_vocabulary(path, spec.vocab_size)
    else:
        formats.check_news(path, (spec.split_sizes[0], spec.split_sizes[2]), spec.vocab_size)


# ----------------------------------------------------------------------------- assembling


def _image_dataset(spec: DatasetSpec, arrays: Arrays, binarize: str | None, seed: int,
                   pad: int = 0) -> Dataset:
    event_shape = (1, *spec.image_shape)
    tensors = {}
    for split in SPLITS:
        x = torch.from_numpy(np.ascontiguousarray(arrays[f"x_{split}"])).to(torch.float32)
        x = x.div_(SCALE[spec.kind]).reshape(-1, *event_shape)
        x = binarize_split(x, binarize, split, seed)
        tensors[split] = torch.nn.functional.pad(x, (pad,) * 4) if pad else x
    if pad:
        event_shape = (1, *(side + 2 * pad for side in spec.image_shape))
    labels = {s: _labels(arrays.get(f"y_{s}")) for s in SPLITS}
    binary = spec.natively_binary or binarize is not None
    return Dataset(
        spec.name,
        **tensors,
        labels=labels,
        event_shape=event_shape,
        binary=binary,
        binarize=binarize,
        seed=seed,
    )


def _bow_dataset(spec: DatasetSpec, arrays: Arrays) -> Dataset:
    n_words = len(arrays["vocabulary"])
    n_train, _, n_test = spec.split_sizes
    train = formats.dense_counts(arrays["train_triples"], n_train, n_words)
    test = formats.dense_counts(arrays["test_triples"], n_test, n_words)
    return Dataset(
        spec.name,
        train=torch.from_numpy(train),
        valid=torch.zeros((0, n_words), dtype=torch.float32),
        test=torch.from_numpy(test),
        labels={
            "train": _labels(arrays["y_train"]),
            "valid": torch.zeros(0, dtype=torch.int64),
            "test": _labels(arrays["y_test"]),
        },
        event_shape=(n_words,),
        binary=False,
        vocabulary=[str(w) for w in arrays["vocabulary"]],
        note="valid is empty: the published protocol has no validation split",
    )


def _labels(y: np.ndarray | None) -> torch.Tensor | None:
    return None if y is None else torch.from_numpy(np.ascontiguousarray(y)).to(torch.int64)
