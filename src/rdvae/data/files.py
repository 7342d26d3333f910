"""Datasets from the user's own files: a .npy array, a .npz archive or a folder of images.

    from rdvae.data.files import load_file_dataset
    ds = load_file_dataset("faces.npy", binarize="static")

Accepted sources (N examples first in every array):

- `.npy`: one array. [N, D] is tabular (event shape (D,), any finite real values);
  [N, H, W] is grey images (event shape (1, H, W)); [N, C, H, W] with C in (1, 3) is kept;
  [N, H, W, C] with C in (1, 3) is transposed to [N, C, H, W]. Other shapes are refused.
- `.npz`: either `x` (and optional labels `y`), split by the seeded fractions, or explicit
  splits `x_train`, `x_test` and optional `x_valid` (labels `y_train`, `y_test`, `y_valid`);
  `train` / `test` / `valid` are accepted in place of `x_train` / `x_test` / `x_valid`.
  `labels_key="label"` reads labels from `label` (or `label_train`, ...) instead of `y`.
  Any other key is refused, so that a misspelt split is never silently dropped.
- a folder of .png / .jpg / .jpeg / .bmp images (suffixes in any case), searched recursively
  and sorted by relative path; files and folders whose name starts with "." are skipped.
  Images in immediate sub-folders are labelled by the sub-folder's name (sorted names,
  index = label). Sub-folders named `train/` and `test/` (and optional `valid/`) are explicit
  splits, each possibly with its own class sub-folders (one class index over all splits).

Values become float32. uint8 arrays are divided by 255 (except a uint8 array holding only 0 and 1,
taken as already binary); images read from a folder are always divided by 255 (alpha is dropped).
Image-like arrays (3-D / 4-D) must then lie in [0, 1]; NaN or infinite values are refused
everywhere. Arrays are read with allow_pickle=False: object or pickled arrays are refused.

Without explicit splits, a permutation from numpy.random.default_rng(split_seed) puts the first
round(N * test_fraction) examples in test, the next round(N * valid_fraction) in valid, the rest
in train. With explicit splits the fractions and split_seed are ignored; a missing valid split
is empty.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from rdvae.data.dataset import SPLITS, Dataset, binarize_split, check_binarize
from rdvae.data.errors import DataError
from rdvae.data.limits import MAX_IMAGE_PIXELS, check_allocation, format_bytes
from rdvae.data.sources import ALIASES, REGISTRY

ARRAY_SUFFIXES = (".npy", ".npz")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
GREY_MODES = ("1", "L", "LA")
IMAGE_MODES = (*GREY_MODES, "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr")
CHUNK = 1 << 20
NPY_MAGIC = b"\x93NUMPY"
Arrays = dict[str, np.ndarray]


def is_data_path(name: str) -> bool:
    """True when `name` names a file dataset: a .npy / .npz name (existing or not) or a folder.

    A registered dataset name or alias ("digits") without a path separator is never a path,
    even if a folder of that name exists here: write "./digits" for the folder.
    """
    name = str(name)
    if name.lower().endswith(ARRAY_SUFFIXES):
        return True
    key = name.strip().lower()
    if (key in REGISTRY or key in ALIASES) and os.sep not in name and "/" not in name:
        return False
    return Path(name).expanduser().is_dir()


def source_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes, or of a folder's sorted (relative path, SHA-256) of images."""
    path = _existing(path)
    if path.is_file():
        return _file_sha256(path)
    digest = hashlib.sha256()
    for file in _image_files(path, path):
        digest.update(f"{file.relative_to(path).as_posix()}\t{_file_sha256(file)}\n".encode())
    return digest.hexdigest()


def load_file_dataset(
    path: str | os.PathLike[str],
    binarize: str | None = None,
    seed: int = 0,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    split_seed: int = 0,
    resize: tuple[int, int] | None = None,
    channels: int | None = None,
    labels_key: str | None = None,
) -> Dataset:
    """A Dataset from a .npy file, a .npz archive or a folder of images (see the module doc).

    binarize: None, "static", "dynamic" or "threshold", for data in [0, 1] that is not binary.
    seed: the random stream of static binarization (and of valid/test under "dynamic").
    valid_fraction, test_fraction, split_seed: the seeded split, when the source has none.
    resize: (H, W) for a folder of images (bilinear); None requires images of one size.
    channels: for a folder, None (grey if every image is grey, else RGB), 1 (grey) or 3 (RGB).
    labels_key: for a .npz, the label array's name when it is not "y".
    """
    given = str(path)
    path = _existing(path)
    binarize = check_binarize(binarize)
    _check_int(path, "seed", seed)
    _check_int(path, "split_seed", split_seed)
    fractions = _check_fractions(path, valid_fraction, test_fraction)
    resize = _check_resize(path, resize)
    if channels not in (None, 1, 3) or isinstance(channels, bool):
        raise DataError(f"{path}: channels={channels!r} is not allowed; use None, 1 (grey) or 3 (RGB)")
    if labels_key is not None and not (isinstance(labels_key, str) and labels_key):
        raise DataError(f"{path}: labels_key={labels_key!r} must be a non-empty string or None")

    suffix = path.suffix.lower()
    if path.is_dir():
        if labels_key is not None:
            raise DataError(f"{path}: labels_key is for .npz files; a folder's labels are its sub-folders")
        xs, ys, where = _read_folder(path, resize, channels)
    elif suffix in ARRAY_SUFFIXES:
        for option, value in (("resize", resize), ("channels", channels)):
            if value is not None:
                raise DataError(f"{path}: {option}={value!r} is for folders of images; use None")
        if suffix == ".npy" and labels_key is not None:
            raise DataError(f"{path}: labels_key is for .npz files; a .npy file holds no labels")
        xs, ys = _read_npy(path) if suffix == ".npy" else _read_npz(path, labels_key)
        where = "the file"
        xs = _scale_arrays(path, xs)
    else:
        raise DataError(
            f"{path}: unsupported file type {path.suffix!r}; use a .npy or .npz file, "
            f"or a folder of {', '.join(IMAGE_SUFFIXES)} images"
        )
    xs = _check_values(path, xs)

    if "all" in xs:
        xs, ys = _seeded_split(path, xs["all"], ys["all"], *fractions, split_seed)
        note = f"splits: seeded (seed {split_seed}, valid {fractions[0]:g}, test {fractions[1]:g})"
    else:
        note = f"splits: from {where}"
    return _dataset(given, path, xs, ys, binarize, seed, note)


# ----------------------------------------------------------------------------- checks


def _existing(path: str | os.PathLike[str]) -> Path:
    if not isinstance(path, str | os.PathLike):
        raise DataError(f"path={path!r} must be a str or a path, not {type(path).__name__}")
    resolved = Path(path).expanduser().resolve()
    if not resolved.exists():
        raise DataError(f"{resolved}: no such file or folder (path given: {str(path)!r})")
    return resolved


def _check_int(path: Path, name: str, value: object) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 0:
        raise DataError(f"{path}: {name}={value!r} must be a non-negative integer")


def _check_fractions(path: Path, valid: object, test: object) -> tuple[float, float]:
    for name, value in (("valid_fraction", valid), ("test_fraction", test)):
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value < 0:
            raise DataError(f"{path}: {name}={value!r} must be a finite number >= 0")
    if valid + test >= 1:
        raise DataError(
            f"{path}: valid_fraction + test_fraction = {valid + test:g} must be < 1 (train needs examples)"
        )
    return float(valid), float(test)


def _check_resize(path: Path, resize: object) -> tuple[int, int] | None:
    if resize is None:
        return None
    ok = isinstance(resize, tuple | list) and len(resize) == 2
    ok = ok and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in resize)
    if not ok:
        raise DataError(f"{path}: resize={resize!r} must be None or two positive integers (H, W)")
    _check_pixels(path, f"resize={list(resize)!r}", int(resize[0]), int(resize[1]))
    return int(resize[0]), int(resize[1])


def _check_pixels(path: Path, what: str, height: int, width: int) -> None:
    if height * width > MAX_IMAGE_PIXELS:
        raise DataError(f"{path}: {what} is {height} x {width} = {height * width} pixels an image; at most "
                        f"{MAX_IMAGE_PIXELS} (2**26, e.g. 8192 x 8192) are allowed: resize to a smaller size")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
    except OSError as e:
        raise DataError(f"{path}: cannot read the file ({e})") from e
    return digest.hexdigest()


# ----------------------------------------------------------------------------- arrays


def _np_load(path: Path):
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
            if magic == NPY_MAGIC:   # the declared array checked before numpy allocates it
                f.seek(0)
                _npy_header(path, "", f, os.fstat(f.fileno()).st_size)
    except OSError as e:
        raise DataError(f"{path}: cannot read the file ({e})") from e
    if magic != NPY_MAGIC and magic[:4] != b"PK\x03\x04":
        raise DataError(
            f"{path}: not a .npy / .npz file (no numpy or zip header); pickles and text files are not "
            "accepted: save plain numeric arrays with numpy.save / numpy.savez"
        )
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise _read_error(path, "", e) from e


def _npy_header(path: Path, key: str, f, size: int) -> int:
    """Read the .npy header at the start of `f` (the file, or the .npz member `key`, of `size` bytes in
    all) and refuse, before anything is allocated, an array larger than the data that follows the
    header or than the memory budget. Returns the bytes loading it takes: the array and, unless it is
    float32, its float32 copy (0 for an object array, which np.load then refuses as pickled data)."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        shape, _, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(f)
        data = size - f.tell()
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise _read_error(path, key, e) from e
    if dtype.hasobject:
        return 0
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    declared = f"{f'key {key!r}' if key else 'the array'} of shape {tuple(shape)} and dtype {dtype}"
    if nbytes > data:
        holder, save = ("zip member", "numpy.savez") if key else ("file", "numpy.save")
        raise DataError(
            f"{path}: the header of {declared} declares {nbytes} bytes ({format_bytes(nbytes)}), but the "
            f"{holder} holds only {data} bytes after the header: it is truncated or its header is damaged; "
            f"save the array again with {save}"
        )
    need = nbytes + (0 if dtype == np.float32 else 4 * count)
    check_allocation(f"{path}: {declared}, read as float32,", need, "save a smaller array or a subset")
    return need


def _read_error(path: Path, key: str, e: Exception) -> DataError:
    """The error for a file (or an npz key) numpy cannot read: pickled/object data named as such."""
    what = f"key {key!r}" if key else "the file"
    if isinstance(e, ValueError) and "pickle" in str(e).lower():
        return DataError(f"{path}: {what} holds pickled data or object arrays, which are not accepted "
                         "(allow_pickle=False); save plain numeric arrays with numpy.save / numpy.savez")
    return DataError(f"{path}: cannot read {what} as numpy data ({e})")


def _read_npy(path: Path) -> tuple[Arrays, dict]:
    x = _np_load(path)
    if not isinstance(x, np.ndarray):
        x.close()
        raise DataError(f"{path}: is a .npz archive, not a .npy array; rename it to .npz")
    return {"all": _numeric(path, "the array", x)}, {"all": None}


def _read_npz(path: Path, labels_key: str | None) -> tuple[Arrays, dict]:
    y_name = labels_key or "y"
    archive = _np_load(path)
    if isinstance(archive, np.ndarray):
        raise DataError(f"{path}: is a .npy array, not a .npz archive; rename it to .npy")
    with archive:
        keys = set(archive.files)
        if "x" in keys:
            layout = {"all": ("x", y_name)}
        else:
            x_of = {s: f"x_{s}" for s in SPLITS} if "x_train" in keys else {s: s for s in SPLITS}
            layout = {s: (x_of[s], f"{y_name}_{s}") for s in SPLITS if s != "valid" or x_of[s] in keys}
        allowed = {name for pair in layout.values() for name in pair}
        missing = [x for x, _ in layout.values() if x not in keys]
        if missing or keys - allowed:
            wrong = f"missing {', '.join(missing)}" if missing else f"unknown {sorted(keys - allowed)}"
            raise DataError(
                f"{path}: unknown key layout ({wrong}); keys found: {sorted(keys)}. Accepted: 'x' "
                f"(+ '{y_name}'), or 'x_train', 'x_test', optional 'x_valid' (+ '{y_name}_train', ...), "
                f"or 'train', 'test', optional 'valid' (+ '{y_name}_train', ...)"
            )
        wanted = [name for pair in layout.values() for name in pair if name in keys]
        need = sum(_member_header(path, archive, name) for name in wanted)
        check_allocation(f"{path}: reading keys {wanted} as float32", need, "save smaller arrays or a subset")
        xs = {s: _numeric(path, f"key {x!r}", _member(path, archive, x)) for s, (x, _) in layout.items()}
        ys = {s: _member(path, archive, y) if y in keys else None for s, (_, y) in layout.items()}
    labelled = [layout[s][1] for s in layout if ys[s] is not None]
    if labels_key is not None and not labelled:
        need = [y for _, y in layout.values()]
        raise DataError(f"{path}: labels_key={labels_key!r} but no key {need}; keys found: {sorted(keys)}")
    if labelled and len(labelled) < len(layout):
        need = [y for _, y in layout.values()]
        raise DataError(f"{path}: labels for some splits only ({labelled}); give all of {need} or none")
    for split, y in ys.items():
        if y is not None:
            _check_labels(path, f"key {layout[split][1]!r}", y, len(xs[split]))
    return xs, ys


def _member_header(path: Path, archive, key: str) -> int:
    """_npy_header of an .npz member, read from the zip without decompressing the array; its data must
    fit in the member's uncompressed size (ZipInfo.file_size)."""
    names = set(archive.zip.namelist())
    name = f"{key}.npy" if f"{key}.npy" in names else key
    try:
        info = archive.zip.getinfo(name)
        with archive.zip.open(info) as f:
            if f.read(len(NPY_MAGIC)) != NPY_MAGIC:
                raise DataError(f"{path}: key {key!r} is not a numpy array (its member {name!r} has no .npy "
                                "header); save plain numeric arrays with numpy.savez")
            f.seek(0)
            return _npy_header(path, key, f, info.file_size)
    except DataError:
        raise
    except Exception as e:  # zlib / zipfile errors of a damaged archive, an encrypted member
        raise _read_error(path, key, e) from e


def _member(path: Path, archive, key: str) -> np.ndarray:
    try:
        return archive[key]
    except Exception as e:  # object arrays; zlib / zipfile errors of a damaged archive
        raise _read_error(path, key, e) from e


def _numeric(path: Path, what: str, x: np.ndarray) -> np.ndarray:
    if x.dtype.kind not in "biuf":
        raise DataError(f"{path}: {what} has dtype {x.dtype}; allowed: bool, integer or float numbers")
    if x.ndim < 2 or x.ndim > 4:
        raise DataError(
            f"{path}: {what} has shape {x.shape}; allowed: [N, D], [N, H, W], [N, C, H, W] "
            "or [N, H, W, C] (C in 1, 3)"
        )
    if x.ndim == 4 and x.shape[1] not in (1, 3):
        if x.shape[-1] not in (1, 3):
            raise DataError(
                f"{path}: {what} has shape {x.shape}; a 4-D array must be [N, C, H, W] or "
                "[N, H, W, C] with C (channels) 1 or 3"
            )
        x = x.transpose(0, 3, 1, 2)
    return x[:, None] if x.ndim == 3 else x


def _check_labels(path: Path, what: str, y: np.ndarray, n: int) -> None:
    if y.dtype.kind not in "iu" or y.shape != (n,):
        raise DataError(
            f"{path}: {what} has dtype {y.dtype} and shape {y.shape}; labels must be integers "
            f"of shape ({n},), one per example"
        )


def _scale_arrays(path: Path, xs: Arrays) -> Arrays:
    """uint8 -> /255 unless it only holds 0 and 1; every other dtype is kept as is."""
    kinds = {x.dtype == np.uint8 for x in xs.values()}
    if len(kinds) > 1:
        dtypes = {s: str(x.dtype) for s, x in xs.items()}
        raise DataError(f"{path}: splits mix uint8 with other dtypes {dtypes}; save them with one dtype")
    if kinds == {True} and any(x.size and x.max() > 1 for x in xs.values()):
        return {s: x.astype(np.float32) / np.float32(255) for s, x in xs.items()}
    return xs


# ----------------------------------------------------------------------------- images


def _image_files(base: Path, root: Path) -> list[Path]:
    found = [
        p
        for p in base.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and p.is_file()
    ]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _read_folder(root: Path, resize, channels) -> tuple[Arrays, dict, str]:
    subdirs = {p.name for p in root.iterdir() if p.is_dir()}
    if subdirs & set(SPLITS):
        if not {"train", "test"} <= subdirs:
            raise DataError(
                f"{root}: has sub-folder(s) {sorted(subdirs & set(SPLITS))} but explicit splits need "
                "both train/ and test/ (valid/ optional); rename the folders if they are classes"
            )
        bases = {s: root / s for s in SPLITS if s in subdirs}
        where = "the train/ valid/ test/ sub-folders"
    else:
        bases, where = {"all": root}, "the folder"
    files = {s: _image_files(base, root) for s, base in bases.items()}
    if "valid" in files and not files["valid"]:
        del files["valid"]  # an empty valid/ folder: valid is empty
    read = {f for split_files in files.values() for f in split_files}
    stray = [f for f in _image_files(root, root) if f not in read]
    if stray:
        raise DataError(f"{root}: image {stray[0]} is outside train/ valid/ test/; move or delete it")
    for split in ("all", "train", "test"):
        if split in files and not files[split]:
            raise DataError(
                f"{bases[split]}: no images found (searched recursively for {', '.join(IMAGE_SUFFIXES)}, "
                "any case)"
            )

    names = {s: [_class_of(f, bases[s]) for f in fs] for s, fs in files.items()}
    given = [n for ns in names.values() for n in ns]
    if any(n is None for n in given) and any(n is not None for n in given):
        loose = next(f for s, fs in files.items() for f, n in zip(fs, names[s], strict=True) if n is None)
        raise DataError(
            f"{root}: mixes images in class sub-folders with loose images such as {loose}; "
            "put every image in a class sub-folder, or none"
        )
    classes = sorted(set(given) - {None})
    index = {name: i for i, name in enumerate(classes)}
    ys = {s: np.array([index[n] for n in ns], np.int64) if classes else None for s, ns in names.items()}

    all_files = [f for fs in files.values() for f in fs]
    modes, sizes = zip(*(_probe(f) for f in all_files), strict=True)
    mode = {1: "L", 3: "RGB"}.get(channels) or ("L" if all(m in GREY_MODES for m in modes) else "RGB")
    if resize is None and len(set(sizes)) > 1:
        other = next(i for i, s in enumerate(sizes) if s != sizes[0])
        raise DataError(
            f"{root}: images differ in size: {all_files[0]} is {sizes[0][0]}x{sizes[0][1]} (W x H), "
            f"{all_files[other]} is {sizes[other][0]}x{sizes[other][1]}; pass resize=(H, W)"
        )
    height, width = resize or (sizes[0][1], sizes[0][0])   # PIL's sizes are (W, H)
    if resize is None:
        _check_pixels(root, f"image {all_files[0]}", height, width)
    n, depth = len(all_files), 1 if mode == "L" else 3
    check_allocation(f"{root}: reading {n} images of {depth} x {height} x {width} values as float32",
                     4 * n * depth * height * width, "pass a smaller resize=(H, W), or use fewer images")
    xs = {s: _decode(fs, mode, resize) for s, fs in files.items()}
    return xs, ys, where


def _class_of(file: Path, base: Path) -> str | None:
    parts = file.relative_to(base).parts
    return parts[0] if len(parts) > 1 else None


def _open(file: Path):
    from PIL import Image

    try:
        return Image.open(file)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{file}: cannot read the image ({e}); the file is corrupt or not an image") from e


def _probe(file: Path) -> tuple[str, tuple[int, int]]:
    with _open(file) as image:
        if image.mode not in IMAGE_MODES:
            raise DataError(
                f"{file}: image mode {image.mode!r} is not supported (16-bit or float pixels); "
                f"save it with 8-bit pixels, one of modes {', '.join(IMAGE_MODES)}"
            )
        return image.mode, image.size


def _decode(files: list[Path], mode: str, resize: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image

    arrays = []
    for file in files:
        with _open(file) as image:
            try:
                image = image.convert(mode)
                if resize is not None:
                    image = image.resize((resize[1], resize[0]), Image.BILINEAR)
                pixels = np.asarray(image, dtype=np.uint8)
            except (OSError, SyntaxError, ValueError) as e:
                raise DataError(f"{file}: cannot read the image ({e}); the file is corrupt") from e
        arrays.append(pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1))
    out = np.stack(arrays).astype(np.float32)
    out /= np.float32(255)   # in place: no second float32 copy
    return out


# ----------------------------------------------------------------------------- assembling


def _check_values(path: Path, xs: Arrays) -> Arrays:
    """float32 arrays, all finite, of one event shape; image-like ones in [0, 1]."""
    with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf is reported below
        out = {s: np.ascontiguousarray(x, dtype=np.float32) for s, x in xs.items()}
    shapes = {s: x.shape[1:] for s, x in out.items()}
    if len(set(shapes.values())) > 1:
        raise DataError(f"{path}: splits differ in example shape {shapes}; they must agree")
    for split, x in out.items():
        if x.size == 0 and split != "valid":  # valid's example shape is train's, checked above
            what = "the array" if split == "all" else f"the {split} split"
            raise DataError(f"{path}: {what} is empty (shape {tuple(x.shape)}); give it examples")
    bad = sum(int(np.count_nonzero(~np.isfinite(x))) for x in out.values())
    if bad:
        raise DataError(f"{path}: {bad} values are NaN or infinite (or beyond float32); all must be finite")
    if next(iter(out.values())).ndim > 2:
        lo = min(float(x.min()) for x in out.values() if x.size)
        hi = max(float(x.max()) for x in out.values() if x.size)
        if lo < 0 or hi > 1:
            raise DataError(
                f"{path}: image values range over [{lo:g}, {hi:g}]; they must lie in [0, 1] "
                "(divide by the maximum grey level, or save as uint8 0..255)"
            )
    return out


def _seeded_split(path: Path, x, y, valid: float, test: float, split_seed: int):
    n = len(x)
    n_test, n_valid = round(n * test), round(n * valid)
    if n_test == 0:
        raise DataError(
            f"{path}: test_fraction={test:g} of {n} examples gives an empty test split; test_fraction "
            "must be > 0 (and large enough) unless the file gives a test split"
        )
    if n - n_test - n_valid <= 0:
        raise DataError(f"{path}: {n} examples leave no training examples after valid and test")
    order = np.random.default_rng(split_seed).permutation(n)
    cut = n_test + n_valid
    parts = {"train": order[cut:], "valid": order[n_test:cut], "test": order[:n_test]}
    return {s: x[i] for s, i in parts.items()}, {s: None if y is None else y[i] for s, i in parts.items()}


def _dataset(given: str, path: Path, xs: Arrays, ys: dict, binarize, seed: int, note: str) -> Dataset:
    if "valid" not in xs:
        xs["valid"] = np.zeros((0, *xs["train"].shape[1:]), np.float32)
        ys["valid"] = None if ys["train"] is None else np.zeros(0, np.int64)
    values = [x for x in xs.values() if x.size]
    lo, hi = min(x.min() for x in values), max(x.max() for x in values)
    unit = lo >= 0 and hi <= 1
    binary = all(bool(np.isin(x, (0, 1)).all()) for x in values)
    if binarize is not None and binary:
        raise DataError(f"{path}: the data is already binary, use binarize=None (it only holds 0 and 1)")
    if binarize is not None and not unit:
        raise DataError(
            f"{path}: binarize={binarize!r} needs values in [0, 1], found [{lo:g}, {hi:g}]; use binarize=None"
        )
    if not unit:  # describe() would otherwise say "grey levels in [0, 1]"
        note += f"; real values in [{lo:g}, {hi:g}], not grey levels"
    tensors = {s: binarize_split(torch.from_numpy(xs[s]), binarize, s, seed) for s in SPLITS}
    labels = {s: None if ys[s] is None else torch.from_numpy(ys[s].astype(np.int64)) for s in SPLITS}
    return Dataset(
        given,
        **tensors,
        labels=labels,
        event_shape=tuple(xs["train"].shape[1:]),
        binary=binary or binarize is not None,
        binarize=binarize,
        seed=seed,
        note=note,
        fingerprint=source_sha256(path),
    )
