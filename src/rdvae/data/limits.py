"""Memory bounds checked before a large allocation, so that an absurd input (a .npy header that declares
a huge shape, data.resize=[100000, 100000], a model of 10**7 hidden units) is a one-line error naming
what was asked for, instead of an allocation that runs the machine out of memory.

The budget is the memory of the machine: psutil's total when psutil is installed (it is not a
dependency), else os.sysconf's physical pages, lowered to the cgroup limit of a container when
there is one. Anything above it can never be held in memory at once; what fits is not promised.
"""

from __future__ import annotations

import os
from pathlib import Path

from rdvae.data.errors import DataError

MAX_IMAGE_PIXELS = 2**26   # pixels (H * W) of one image of a folder dataset: 8192 x 8192
_CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


def _physical_memory() -> int | None:
    try:
        import psutil
    except ImportError:
        pass
    else:
        return int(psutil.virtual_memory().total)
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):   # pragma: no cover - Windows
        return None


def _cgroup_limit() -> int | None:
    for path in _CGROUP_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            return int(text)
    return None


def memory_budget() -> int | None:
    """Bytes this process can hold at most: the machine's memory, or its container's limit when lower;
    None when neither can be read (nothing is then refused)."""
    known = [n for n in (_physical_memory(), _cgroup_limit()) if n and n > 0]
    return min(known) if known else None


def format_bytes(n: int) -> str:
    """`n` bytes in binary units: '512 bytes', '3.0 GiB', '2.8 PiB'."""
    value, unit = float(n), "bytes"
    for name in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if value < 1024:
            break
        value, unit = value / 1024, name
    return f"{n} bytes" if unit == "bytes" else f"{value:.1f} {unit}"


def over_budget(nbytes: int) -> int | None:
    """The budget when `nbytes` exceeds it, else None."""
    budget = memory_budget()
    return budget if budget is not None and nbytes > budget else None


def check_allocation(what: str, nbytes: int, advice: str = "") -> None:
    """A DataError when `what` needs more than memory_budget() bytes: '{what} needs N bytes (X), more than
    this machine's memory (Y)', followed by `advice`."""
    budget = over_budget(nbytes)
    if budget is not None:
        tail = f"; {advice}" if advice else ""
        raise DataError(f"{what} needs {nbytes} bytes ({format_bytes(nbytes)}), more than this machine's "
                        f"memory ({format_bytes(budget)}){tail}")
