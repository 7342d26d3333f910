"""Cache of parsed arrays as .npy files, keyed by the source files' sizes and mtimes.

Layout: <cache folder>/<key>/<array>.npy, written into a temporary folder and renamed
into place, so a reader never sees a half-written entry. Arrays load with
allow_pickle=False; nothing is ever pickled.

The cache folder is $RDVAE_CACHE/<dataset> when that is set, else <user cache>/parsed/<dataset>
where <user cache> is platformdirs.user_cache_dir("rdvae") when platformdirs is installed, else
$XDG_CACHE_HOME/rdvae, else ~/.cache/rdvae. Nothing is ever written into the data folder, which
may be shared or read-only.
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

from rdvae.data.sources import DatasetSpec

PARSER_VERSION = 1
Arrays = dict[str, np.ndarray]


def user_cache_dir() -> Path:
    """The user's cache folder for rdvae: platformdirs' when installed, else $XDG_CACHE_HOME/rdvae,
    else ~/.cache/rdvae."""
    try:
        import platformdirs
    except ImportError:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg).expanduser() if xdg and Path(xdg).expanduser().is_absolute() else None
        return (base or Path("~/.cache").expanduser()) / "rdvae"
    return Path(platformdirs.user_cache_dir("rdvae"))


def cache_folder(spec: DatasetSpec, root: Path) -> Path:
    """$RDVAE_CACHE/<dataset>, else <user cache>/parsed/<dataset> (see the module doc); never a
    folder inside the data folder `root` (kept in the signature for callers)."""
    env = os.environ.get("RDVAE_CACHE")
    if env:
        return Path(env).expanduser().resolve() / spec.name
    return user_cache_dir() / "parsed" / spec.name


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
