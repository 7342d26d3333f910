"""The run directory contract (DESIGN.md) and atomic file writes.

    config.json        everything needed to rebuild and re-run the run
    metrics.jsonl      one JSON line per evaluation during training
    summary.json       final figures (rate, distortion, elbo, iw_nll, ...)
    model.safetensors  the latest weights
    trainer_state.safetensors   weights + optimizer + RNG + counters, for --resume

Every file is written to a temporary name in the same folder and moved into place with
os.replace, so a crash never leaves a half-written file under the real name (and a symlink at the
destination is replaced, never written through).

One process writes a run folder at a time: every writer holds `RunDir.lock()`, an OS lock (flock) on
.rdvae.lock in the folder, which names the holder's pid; a second writer is refused at once.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .errors import ConfigError

CONFIG, METRICS, SUMMARY = "config.json", "metrics.jsonl", "summary.json"
WEIGHTS, TRAINER_STATE = "model.safetensors", "trainer_state.safetensors"
LOCK = ".rdvae.lock"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _FILE_MODE)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


atomic_write = _atomic   # atomic_write(path, write): write(tmp) fills a temporary file moved onto path


def _json_safe(value):
    """NaN and infinities become null so the files stay valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_json(path: Path, data: dict) -> None:
    def write(tmp):
        with open(tmp, "w") as fh:
            json.dump(_json_safe(data), fh, indent=2, sort_keys=True)
            fh.write("\n")

    _atomic(path, write)


def write_text(path: Path, text: str) -> None:
    def write(tmp):
        Path(tmp).write_text(text)

    _atomic(path, write)


MAX_JSON_DEPTH = 32   # levels of [ ] and { } that JSON read from the user or a run directory may nest


def json_depth(value) -> int:
    """How deeply lists and dicts nest in `value` (0 for a scalar, 1 for [1, 2]); no recursion."""
    depth, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list | tuple):
            level += 1
            depth = max(depth, level)
            stack.extend((child, level) for child in (item.values() if isinstance(item, dict) else item))
    return depth


def too_deep(what: str, depth: int | None, max_depth: int = MAX_JSON_DEPTH):
    """The ConfigError for a value nested deeper than `max_depth` (depth None: too deep to parse)."""
    from .errors import ConfigError

    found = "nested too deeply to parse" if depth is None else f"nested {depth} levels deep"
    return ConfigError(f"{what}: the value is {found}; at most {max_depth} levels of [ ] and {{ }} are "
                       "allowed")


def loads_bounded(text: str, what: str, max_depth: int = MAX_JSON_DEPTH, parse=json.loads):
    """`parse(text)` (JSON by default; e.g. tomllib.loads for TOML), refused with a one-line ConfigError
    naming `what` (the option or the file read) when it nests deeper than `max_depth`, or so deep
    that the parser runs out of recursion. The parser's own errors (JSONDecodeError, ...) pass through."""
    try:
        value = parse(text)
    except RecursionError:
        raise too_deep(what, None, max_depth) from None
    depth = json_depth(value)
    if depth > max_depth:
        raise too_deep(what, depth, max_depth)
    return value


def read_json(path: Path) -> dict:
    """A JSON object from a file; a ConfigError naming the file when it is not one (or nests deeper
    than MAX_JSON_DEPTH)."""
    from .errors import ConfigError

    try:
        with open(path) as fh:
            data = loads_bounded(fh.read(), str(path))
    except ConfigError as err:
        raise ConfigError(f"{err}; restore it, or delete the run and train it again") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path} is not valid JSON ({err}); restore it, or delete the run and train it "
                          "again") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object, found {type(data).__name__}; restore it, or "
                          "delete the run and train it again")
    return data


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
    """Atomic safetensors write; `metadata` values are stored as JSON strings."""
    meta = {k: json.dumps(_json_safe(v)) for k, v in (metadata or {}).items()}
    cpu = {k: t.detach().to("cpu").contiguous() for k, t in tensors.items()}
    _atomic(path, lambda tmp: save_file(cpu, tmp, metadata=meta))


def load_tensors(path: Path, device: str = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors import SafetensorError, safe_open

    from .errors import ConfigError

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = {k: json.loads(v) for k, v in (fh.metadata() or {}).items()}
        return load_file(str(path), device=device), meta
    except (SafetensorError, ValueError, OSError) as err:
        fix = (f"`rdvae train --resume --out {Path(path).parent}` rewrites it from the run's checkpoint"
               if Path(path).name == WEIGHTS else "the checkpoint is lost: train the run again (a finished "
               f"run's {WEIGHTS} still evaluates)" if Path(path).name == TRAINER_STATE
               else "restore it, or train the run again")
        raise ConfigError(f"{path} is not a readable safetensors file ({' '.join(str(err).split())}): "
                          f"truncated or damaged; {fix}") from None


class RunLocked(ConfigError):
    """Another process writes the folder."""


_HELD: dict[str, list] = {}   # resolved folder -> [fd, depth]: the locks this process holds


def _holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        return "another process"
    pid, _, command = text.partition(" ")
    return f"process {pid} ({command})" if pid.isdigit() and command else (
        f"process {pid}" if pid.isdigit() else "another process")


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str = "") -> Iterator[None]:
    """Hold the write lock of `folder` (created if missing) for the block: an flock on folder/.rdvae.lock,
    which holds this process's pid and `what` it does. Re-entrant in one process; another process
    holding it raises RunLocked naming its pid at once (nothing waits). The lock file is never written
    through a symlink. Where the OS has no flock (Windows), the block runs unlocked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    folder = Path(folder)
    key = str(folder.resolve())
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield
        finally:
            _HELD[key][1] -= 1
        return
    path = folder / LOCK
    while True:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as err:
            raise ConfigError(f"cannot write into {folder} ({err.strerror or err}): a command that "
                              "writes a folder needs write access to it (and .rdvae.lock there must not be "
                              "a symlink)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RunLocked(f"{folder} is being written by {_holder(path)}; wait for it to finish or stop "
                            "it (one process writes a run or sweep folder at a time)") from None
        try:   # the file may have been removed (and made anew) between open and flock: lock the new one
            same = os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino
        except OSError:
            same = False
        if same:
            break
        os.close(fd)
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:2]]) if sys.argv and sys.argv[0] else "python"
    _HELD[key] = [fd, 1]
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {what or command}\n".encode())
        yield
    finally:
        del _HELD[key]
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def foreign_files(folder: Path, allowed: Iterable[str]) -> list[str]:
    """Names in `folder` that are not among `allowed` (temporary files of atomic writes excepted)."""
    if not folder.is_dir():
        return []
    allowed = set(allowed)
    return sorted(p.name for p in folder.iterdir()
                  if p.name not in allowed and not (p.name.startswith(".") and p.name.endswith(".tmp")))


class RunDir:
    """Paths and readers/writers of one run directory."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def exists(self) -> bool:
        if self.path.exists() and not self.path.is_dir():
            from .errors import ConfigError

            raise ConfigError(f"{self.path} is a file, not a run directory; choose another --out")
        return (self.path / CONFIG).exists()

    def lock(self, what: str = ""):
        """The folder's write lock (folder_lock): held by every command that writes into it."""
        return folder_lock(self.path, what)

    def remove_temporary(self) -> list[Path]:
        """Delete the temporary files an interrupted atomic write left behind (.NAME.XXXX.tmp);
        returns them. Called when a run resumes (one writer per run directory)."""
        leftovers = [p for p in self.path.glob(".*.tmp") if p.is_file()]
        for path in leftovers:
            path.unlink(missing_ok=True)
        return leftovers

    def read_config(self) -> dict:
        if not self.exists:
            raise FileNotFoundError(
                f"{self.path} is not a run directory (no {CONFIG}); train one with "
                f"`rdvae train --out {self.path}`"
            )
        return read_json(self.path / CONFIG)

    def write_config(self, config: dict) -> None:
        write_json(self.path / CONFIG, config)

    def read_summary(self) -> dict:
        path = self.path / SUMMARY
        return read_json(path) if path.exists() else {}

    def update_summary(self, **values) -> dict:
        summary = {**self.read_summary(), **values}
        write_json(self.path / SUMMARY, summary)
        return summary

    def read_metrics(self) -> list[dict]:
        """The records of metrics.jsonl. A last line that is not a JSON object is what a kill during
        an append leaves: it is skipped with a warning (a resume rewrites the file without it); a
        damaged line before the last is a ConfigError naming the file and the line."""
        from .errors import ConfigError

        path = self.path / METRICS
        if not path.exists():
            return []
        text = path.read_text(errors="replace")   # a damaged byte is reported below, as a bad line
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        records = []
        for n, line in lines:
            try:
                record = loads_bounded(line, f"{path} line {n}")
                if not isinstance(record, dict):
                    raise ValueError(f"a JSON {type(record).__name__}, not an object")
            except ValueError as err:   # JSONDecodeError, too deep (ConfigError), not an object
                why = " ".join(str(err).split())
                if n == lines[-1][0]:
                    warnings.warn(f"{path}: skipped its last line {line[:60]!r}, which is incomplete (a "
                                  f"write was interrupted: {why}); resuming the run rewrites the file "
                                  "without it", stacklevel=2)
                    break
                raise ConfigError(f"{path} line {n} is not a JSON object ({why}); "
                                  "only the last line can be cut short by an interrupted write: restore the "
                                  "file, or delete the run and train it again") from None
            records.append(record)
        return records

    def append_metrics(self, record: dict) -> None:
        with open(self.path / METRICS, "a") as fh:
            fh.write(json.dumps(_json_safe(record), sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def keep_metrics(self, records: Iterable[dict]) -> None:
        """Rewrite metrics.jsonl with only `records` (used when resuming from a checkpoint)."""
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
        write_text(self.path / METRICS, text)
