"""Parsers for the source file formats: IDX (gz), .amat text, 20 Newsgroups bag of words.

Every parser checks the content it reads and raises DataError naming the file and the
problem; none writes anything to disk.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from rdvae.data.errors import corrupt

# ----------------------------------------------------------------------------- IDX


def read_idx(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """A gzip-compressed IDX file of unsigned bytes, whose dimensions must equal `shape`."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as err:
        raise corrupt(path, f"cannot decompress gzip data ({err})") from err
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise corrupt(path, f"bad IDX magic number {raw[:4].hex() or 'empty'} (want 000008xx)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise corrupt(path, "IDX header is truncated")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    if dims != tuple(shape):
        raise corrupt(path, f"IDX dimensions are {dims}, expected {tuple(shape)}")
    if len(raw) != header + int(np.prod(dims)):
        raise corrupt(path, f"IDX data has {len(raw) - header} bytes, expected {np.prod(dims)}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims).copy()


# ----------------------------------------------------------------------------- .amat

_AMAT_BYTES = np.zeros(256, dtype=bool)
_AMAT_BYTES[list(b"01 \n\r")] = True


def read_amat(path: Path, rows: int, cols: int) -> np.ndarray:
    """A text file of `rows` lines of `cols` space-separated 0/1 values, as uint8 [rows, cols]."""
    data = path.read_bytes()
    if b"\r" in data:
        data = data.replace(b"\r", b"")
    if data and not data.endswith(b"\n"):
        data += b"\n"
    buf = np.frombuffer(data, np.uint8)
    values = _amat_fixed_layout(buf, cols)
    if values is None:
        bad = np.flatnonzero(~_AMAT_BYTES[buf])
        if bad.size:
            pos = int(bad[0])
            row = data.count(b"\n", 0, pos) + 1
            found = bytes(data[pos : pos + 1])
            raise corrupt(path, f"row {row} holds {found!r}; values must be 0 or 1")
        values = _amat_by_line(data, cols, path)
    if values.shape[0] != rows:
        raise corrupt(path, f"{values.shape[0]} rows, expected {rows}")
    return values


def _amat_fixed_layout(buf: np.ndarray, cols: int) -> np.ndarray | None:
    """Fast path: every line is exactly "v v ... v\\n"; None when the layout differs."""
    width = 2 * cols
    if buf.size == 0 or buf.size % width:
        return None
    lines = buf.reshape(-1, width)
    digits = lines[:, 0::2]
    if not ((lines[:, 1:-1:2] == 32).all() and (lines[:, -1] == 10).all()):
        return None
    if not ((digits == 48) | (digits == 49)).all():
        return None
    return digits - np.uint8(48)


def _amat_by_line(data: bytes, cols: int, path: Path) -> np.ndarray:
    """Slow path for irregular spacing or blank lines; names the first bad row."""
    out = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != cols:
            raise corrupt(path, f"row {number} has {len(tokens)} values, expected {cols}")
        joined = b"".join(tokens)
        if len(joined) != cols:
            raise corrupt(path, f"row {number} holds a value other than 0 or 1")
        out.append(np.frombuffer(joined, np.uint8) - np.uint8(48))
    return np.stack(out) if out else np.zeros((0, cols), np.uint8)


# ----------------------------------------------------------------------------- 20 Newsgroups

NEWS_PREFIX = "20news-bydate/matlab/"
NEWS_MEMBERS = tuple(f"{NEWS_PREFIX}{s}.{e}" for s in ("train", "test") for e in ("data", "label"))


def read_news_archive(path: Path) -> dict[str, bytes]:
    """The expected members of the 20news-bydate-matlab tgz, read without extracting.

    Any absolute path, `..` component, link or special file in the archive is refused.
    """
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                name = member.name
                parts = PurePosixPath(name.replace("\\", "/")).parts
                if name.startswith(("/", "\\")) or PureWindowsPath(name).drive or ".." in parts:
                    raise corrupt(path, f"archive member {name!r} has an unsafe path; refused")
                if member.issym() or member.islnk():
                    raise corrupt(path, f"archive member {name!r} is a link; refused")
                if member.isdir():
                    continue
                if not member.isfile():
                    raise corrupt(path, f"archive member {name!r} is not a regular file; refused")
                clean = str(PurePosixPath(name))
                if clean in NEWS_MEMBERS:
                    extracted = tar.extractfile(member)
                    if extracted is None:
                        raise corrupt(path, f"archive member {name!r} cannot be read")
                    found[clean] = extracted.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise corrupt(path, f"cannot read the tar.gz archive ({err})") from err
    absent = [m for m in NEWS_MEMBERS if m not in found]
    if absent:
        raise corrupt(path, f"archive lacks {', '.join(absent)}")
    return found


def parse_triples(raw: bytes, where: str, path: Path, n_docs: int, vocab_size: int) -> np.ndarray:
    """1-based "doc word count" lines -> int64 [K, 3] of 0-based doc, 0-based word, count."""
    try:
        triples = np.loadtxt(io.BytesIO(raw), dtype=np.int64, ndmin=2)
    except ValueError as err:
        raise corrupt(path, f"{where}: malformed 'doc word count' line ({err})") from err
    if triples.shape[1:] != (3,):
        raise corrupt(path, f"{where}: lines have {triples.shape[1]} numbers, expected 3")
    docs, words, counts = triples.T
    if triples.size and (docs.min() < 1 or docs.max() > n_docs):
        raise corrupt(path, f"{where}: document ids outside 1..{n_docs}")
    if triples.size and (words.min() < 1 or words.max() > vocab_size):
        raise corrupt(path, f"{where}: word ids outside 1..{vocab_size}")
    if triples.size and counts.min() < 1:
        raise corrupt(path, f"{where}: counts must be positive")
    return np.stack([docs - 1, words - 1, counts], axis=1)


def parse_labels(
    raw: bytes, where: str, path: Path, n_docs: int, n_classes: int = 20
) -> np.ndarray:
    """One 1-based class per line -> int64 [n_docs] of 0-based classes."""
    try:
        labels = np.loadtxt(io.BytesIO(raw), dtype=np.int64, ndmin=1)
    except ValueError as err:
        raise corrupt(path, f"{where}: malformed label line ({err})") from err
    if labels.shape != (n_docs,):
        raise corrupt(path, f"{where}: {labels.size} labels, expected {n_docs} documents")
    if labels.size and (labels.min() < 1 or labels.max() > n_classes):
        raise corrupt(path, f"{where}: labels outside 1..{n_classes}")
    return labels - 1


def read_vocabulary(path: Path, size: int) -> list[str]:
    """One word per line; exactly `size` words."""
    try:
        words = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise corrupt(path, f"not UTF-8 text ({err})") from err
    if len(words) != size:
        raise corrupt(path, f"{len(words)} words, expected {size}")
    return words


def top_words(triples: np.ndarray, vocab_size: int, k: int) -> np.ndarray:
    """Ids of the k words with the highest document frequency, ties to the lower id."""
    pairs = np.sort(triples[:, 0] * vocab_size + triples[:, 1])
    pairs = pairs[np.concatenate(([True], pairs[1:] != pairs[:-1]))]  # each (doc, word) once
    frequency = np.bincount(pairs % vocab_size, minlength=vocab_size)
    order = np.lexsort((np.arange(vocab_size), -frequency))
    return order[:k]


def restrict(triples: np.ndarray, kept: np.ndarray, vocab_size: int) -> np.ndarray:
    """Triples with word ids renumbered to positions in `kept`; other words dropped."""
    column = np.full(vocab_size, -1, dtype=np.int64)
    column[kept] = np.arange(kept.size)
    new = column[triples[:, 1]]
    keep = new >= 0
    return np.stack([triples[keep, 0], new[keep], triples[keep, 2]], axis=1)


def dense_counts(triples: np.ndarray, n_docs: int, n_words: int) -> np.ndarray:
    """float32 [n_docs, n_words] count matrix; repeated (doc, word) pairs add up."""
    out = np.zeros((n_docs, n_words), dtype=np.float32)
    np.add.at(out, (triples[:, 0], triples[:, 1]), triples[:, 2].astype(np.float32))
    return out


def check_news(path: Path, sizes: tuple[int, int], vocab_size: int) -> dict[str, np.ndarray]:
    """Triples and labels of both splits of the archive, verified; raises DataError."""
    members = read_news_archive(path)
    out: dict[str, np.ndarray] = {}
    for split, n_docs in zip(("train", "test"), sizes, strict=True):
        where = f"{NEWS_PREFIX}{split}"
        out[f"{split}_triples"] = parse_triples(
            members[f"{where}.data"], f"{where}.data", path, n_docs, vocab_size
        )
        out[f"{split}_labels"] = parse_labels(
            members[f"{where}.label"], f"{where}.label", path, n_docs
        )
    return out
