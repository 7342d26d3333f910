"""The run directory contract (DESIGN.md) and atomic file writes.

    config.json        everything needed to rebuild and re-run the run
    metrics.jsonl      one JSON line per evaluation during training
    summary.json       final figures (rate, distortion, elbo, iw_nll, ...)
    model.safetensors  the latest weights
    trainer_state.safetensors   weights + optimizer + RNG + counters, for --resume

Every file is written to a temporary name in the same folder and moved into place with
os.replace, so a crash never leaves a half-written file under the real name.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

CONFIG, METRICS, SUMMARY = "config.json", "metrics.jsonl", "summary.json"
WEIGHTS, TRAINER_STATE = "model.safetensors", "trainer_state.safetensors"


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


def read_json(path: Path) -> dict:
    """A JSON object from a file; a ConfigError naming the file when it is not one."""
    from .errors import ConfigError

    try:
        with open(path) as fh:
            data = json.load(fh)
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
        raise ConfigError(f"{path} is not a readable safetensors file ({err}): truncated or damaged; "
                          "resume the run to rewrite it from its checkpoint, or train it again") from None


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
        path = self.path / METRICS
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def append_metrics(self, record: dict) -> None:
        with open(self.path / METRICS, "a") as fh:
            fh.write(json.dumps(_json_safe(record), sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def keep_metrics(self, records: Iterable[dict]) -> None:
        """Rewrite metrics.jsonl with only `records` (used when resuming from a checkpoint)."""
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
        write_text(self.path / METRICS, text)
