"""Finding source files, downloading missing ones from their mirrors and verifying them."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from rdvae.data.errors import DataError, corrupt
from rdvae.data.sources import DatasetSpec, FileSpec

TIMEOUT_S = 30.0
CHUNK = 1 << 20

Verifier = Callable[[FileSpec, Path], None]


def digest(path: Path, algorithm: str) -> str:
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            hasher.update(block)
    return hasher.hexdigest()


def md5sum(path: Path) -> str:
    return digest(path, "md5")


def check_md5(file: FileSpec, path: Path) -> None:
    """Raise DataError when the file's SHA-256 (pinned) or md5 (published) differs; the SHA-256 is
    checked when known, as it alone catches what md5 does."""
    if file.sha256 is not None:
        actual = digest(path, "sha256")
        if actual != file.sha256:
            raise corrupt(path, f"SHA-256 is {actual}, expected {file.sha256}")
        return
    if file.md5 is None:
        return
    actual = md5sum(path)
    if actual != file.md5:
        raise corrupt(path, f"md5 is {actual}, expected {file.md5}")


def writable(folder: Path) -> bool:
    """True for a folder we may write into; permission bits that forbid writing are
    respected even by root (a shared read-only copy must stay untouched)."""
    try:
        mode = folder.stat().st_mode
    except OSError:
        return False
    return folder.is_dir() and os.access(folder, os.W_OK) and bool(mode & 0o222)


def offline() -> bool:
    """True when $RDVAE_OFFLINE asks never to download."""
    return os.environ.get("RDVAE_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def ensure_files(
    spec: DatasetSpec, folder: Path, download: bool, verify: Verifier
) -> dict[str, Path]:
    """Paths of every file of `spec` in `folder`, downloading the missing ones if allowed."""
    paths = {f.name: folder / f.name for f in spec.files}
    missing = [f for f in spec.files if not paths[f.name].is_file()]
    failures: list[str] = []
    if missing and download and not offline():
        for file in missing:
            try:
                fetch(file, folder, verify)
            except Unreachable as err:  # offline: do not wait on every other file too
                failures.append(f"{err} (no further downloads tried)")
                break
            except DataError as err:
                failures.append(str(err))
        missing = [f for f in missing if not paths[f.name].is_file()]
    if missing:
        raise missing_files_error(spec, folder, missing, failures)
    return paths


def missing_files_error(
    spec: DatasetSpec, folder: Path, missing: list[FileSpec], failures: list[str]
) -> DataError:
    lines = [f"dataset {spec.name!r}: {len(missing)} file(s) missing from {folder}:"]
    for f in missing:
        lines.append(f"  - {folder / f.name}  (source: {' or '.join(f.urls)})")
    if failures:
        lines.append("Downloading failed:")
        lines.extend(f"  {msg}" for msg in failures)
    else:
        lines.append("Downloading was not attempted (download=False or RDVAE_OFFLINE set).")
    lines.append(
        f"Put each file, under that name, in {folder}, or set RDVAE_DATA to a folder that "
        f"holds {spec.folder}/ with these files (or pass root=...)."
    )
    return DataError("\n".join(lines))


class Unreachable(DataError):
    """No mirror of a file could even be connected to."""


def fetch(file: FileSpec, folder: Path, verify: Verifier) -> Path:
    """Download `file` into `folder`, trying each mirror; atomic, verified before it lands."""
    target = folder / file.name
    reasons = []
    connected = False
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"{file.name}: cannot create {folder}: {err}") from err
    if not writable(folder):
        raise DataError(f"{file.name}: {folder} is not writable")
    for url in file.urls:
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{file.name}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                _copy_url(url, out, file.name)
            check_md5(file, tmp)
            verify(file, tmp)
            os.replace(tmp, target)
            return target
        except (OSError, urllib.error.URLError, DataError) as err:
            reasons.append(f"{url}: {err}")
            connected |= not _connection_error(err)
        finally:
            tmp.unlink(missing_ok=True)
    error = DataError if connected else Unreachable
    raise error(f"{file.name}: every mirror failed: " + "; ".join(reasons))


def _connection_error(err: BaseException) -> bool:
    """True when no server answered at all (DNS failure, refused, timed out)."""
    if isinstance(err, urllib.error.HTTPError):
        return False
    return isinstance(err, (urllib.error.URLError, TimeoutError, ConnectionError))


def _copy_url(url: str, out, desc: str) -> None:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310 (fixed URLs)
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=total is None) as bar:
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                bar.update(len(block))
