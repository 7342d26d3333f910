"""Cache of parsed arrays as .npy files, keyed by the source files' sizes and mtimes.

Layout: <cache folder>/<key>/<array>.npy, written into a temporary folder and renamed
into place, so a reader never sees a half-written entry. Arrays load with
allow_pickle=False; nothing is ever pickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from rdvae.data.download import writable
from rdvae.data.sources import DatasetSpec

PARSER_VERSION = 1
Arrays = dict[str, np.ndarray]


def cache_folder(spec: DatasetSpec, root: Path) -> Path:
    """$RDVAE_CACHE/<dataset>, else <root>/<folder>/.rdvae-cache if writable, else ~/.cache."""
    env = os.environ.get("RDVAE_CACHE")
    if env:
        return Path(env).expanduser().resolve() / spec.name
    source = root / spec.folder
    local = source / ".rdvae-cache"
    if writable(source) and (not local.exists() or writable(local)):
        try:
            local.mkdir(exist_ok=True)
            return local
        except OSError:
            pass
    return Path("~/.cache/rdvae/parsed").expanduser() / spec.name


def cache_key(spec: DatasetSpec, paths: Mapping[str, Path]) -> str:
    """Digest of the parser version, the spec and each source file's path, size and mtime."""
    files = []
    for name in sorted(paths):
        st = paths[name].stat()
        files.append([name, str(paths[name].resolve()), st.st_size, st.st_mtime_ns])
    blob = json.dumps([PARSER_VERSION, repr(spec), files], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def load(folder: Path, key: str) -> Arrays | None:
    """The arrays stored under `key`, or None when absent or unreadable."""
    entry = folder / key
    if not entry.is_dir():
        return None
    try:
        return {p.stem: np.load(p, allow_pickle=False) for p in sorted(entry.glob("*.npy"))}
    except (OSError, ValueError):
        return None


def save(folder: Path, key: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Store `arrays` under `key` atomically and drop stale entries; warns on failure.

    When another process stored the same key meanwhile, its entry is kept.
    """
    entry = folder / key
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".tmp-"))
    except OSError as err:
        warnings.warn(f"could not cache parsed data in {folder}: {err}", stacklevel=3)
        return
    try:
        for name, array in arrays.items():
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
        os.replace(tmp, entry)
    except OSError as err:
        if not entry.is_dir():
            warnings.warn(f"could not cache parsed data in {folder}: {err}", stacklevel=3)
        return
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for stale in folder.iterdir():
        if stale.name != key and not stale.name.startswith(".tmp-") and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


def cached(
    spec: DatasetSpec, root: Path, paths: Mapping[str, Path], parse: Callable[[], Arrays]
) -> Arrays:
    """Arrays from the cache when the source files are unchanged, else parse() and store."""
    folder = cache_folder(spec, root)
    key = cache_key(spec, paths)
    arrays = load(folder, key)
    if arrays is None:
        shutil.rmtree(folder / key, ignore_errors=True)  # an unreadable entry, if any
        arrays = parse()
        save(folder, key, arrays)
    return arrays
