"""Paper reproductions: one module each, built only from the layers below (no math here).

A reproduction module defines

    NAME = "elbo-surgery"              # the name `rdvae repro NAME` takes
    DESCRIPTION = "one line"
    def run(scale: str, out: Path, progress: bool = True) -> dict: ...

`run` writes its tables, figures and results under `out` and returns the figures it measured.
Scales: `smoke` (seconds, used by tests), `cpu` (a reduced but faithful version that finishes
on 2 cores), `paper` (the paper's sizes, for a GPU). Modules are discovered, so adding a
reproduction is adding a file.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

SCALES = ("smoke", "cpu", "paper")


def reproductions() -> dict[str, ModuleType]:
    """name -> module, for every module of this package that defines NAME and run."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "run"):
            found[module.NAME] = module
    return dict(sorted(found.items()))


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    return scale
