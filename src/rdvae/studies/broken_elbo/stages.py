"""The named stages of the broken-elbo study's MNIST grid: which runs each stage adds to a scale's one
sweep folder, and the growing of that folder's sweep.json, so that the grid grows one stage at a time
(each stage resumable; the analysis reads every finished run of every stage run so far).

    grid        the scale's grid (study.SCALES: families x betas, the fig. 4 betas of -+v), the
                default; its runs are named "NNN-family=<code>_beta=<beta>" as they always were, so
                a folder trained before stages existed goes on as it is
    <stage>     a scale's further stages (study.SCALES[scale]["stages"]: at the cpu scale `corner`,
                the simple-decoder families at beta 0.1, 5 and 10, and `unannealed`, the PixelCNN
                families at beta 1 and -+v at 1.1 without KL annealing); their runs are named
                "<stage>-family=<code>_beta=<beta>", the same folder whatever order the stages run
                in, and an unannealed run is a row of its own beside the grid's annealed run of the
                same family and beta

A stage's command trains the runs of that stage and any unfinished run of a stage started before it
in the same folder (the folder's sweep is one table), then analyses every finished run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from rdvae.errors import ConfigError
from rdvae.rundir import folder_lock
from rdvae.sweep import SweepError, SweepSpec, load_spec
from rdvae.sweep.spec import save_spec

GRID = "grid"


def stage_names(settings: dict) -> tuple[str, ...]:
    """The stages of a scale (its settings, study.SCALES[scale]): the grid, then its own."""
    return (GRID, *settings.get("stages", {}))


def check_stage(stage: str, scale: str, settings: dict) -> str:
    """`stage`, or a ConfigError naming the stages the scale has."""
    names = stage_names(settings)
    if stage not in names:
        described = "; ".join(f"{name}: {settings['stages'][name]['description']}" for name in names[1:])
        raise ConfigError(f"stage must be one of {', '.join(names)} at the {scale} scale, got {stage!r}"
                          + (f" ({GRID}: the scale's grid; {described})" if described else ""))
    return stage


def run_names(stage: str, pairs: Sequence[tuple[str, float]]) -> list[str]:
    """The run folder names of a non-grid stage's (family code, beta) pairs: "<stage>-family=..._beta=...",
    the grid's names without their index (rdvae.sweep's naming of the same points)."""
    indexed = SweepSpec(points=[{"family": f, "beta": b} for f, b in pairs]).names
    return [f"{stage}-{name.split('-', 1)[1]}" for name in indexed]


def stage_of(run_dir: str) -> str:
    """The stage a run folder ("runs/NAME" or NAME) belongs to: its name's prefix, the grid for an
    index ("000-...")."""
    prefix = Path(run_dir).name.split("-", 1)[0]
    return GRID if prefix.isdigit() else prefix


def _canonical(value) -> str:
    return json.dumps(json.loads(json.dumps(value)), sort_keys=True)


def grow_sweep(out: str | Path, spec: SweepSpec) -> SweepSpec:
    """The sweep of folder `out` grown by the runs of `spec` that it lacks, saved as its sweep.json
    (a folder without one is left to the sweep runner, which saves `spec` as it is). The saved runs
    keep their names, settings and order, the new ones follow; a run that both name must have the
    same settings (SweepError naming it otherwise). A new run's point carries whatever of `spec`'s base
    differs from the saved base, so that no saved run's settings change."""
    out = Path(out)
    with folder_lock(out, "rdvae repro broken-elbo (growing the sweep)"):
        saved = load_spec(out)
        if saved is None:
            return spec
        known = dict(zip(saved.names, saved.points, strict=True))
        names, points = [], []
        for name, point in zip(spec.names, spec.points, strict=True):
            settings = {**spec.base, **point}
            if name in known:
                if _canonical({**saved.base, **known[name]}) != _canonical(settings):
                    raise SweepError(f"{out}: run {name} in sweep.json has other settings than the same "
                                     "run of this stage; finish it with the code that started it, or run the "
                                     "stage in a new --out")
                continue
            lacking = sorted(set(saved.base) - set(settings))
            if lacking:
                raise SweepError(f"{out}: sweep.json sets {', '.join(lacking)} for every run, which run "
                                 f"{name} leaves unset; run the stage in a new --out")
            names.append(name)
            points.append({k: v for k, v in settings.items()
                           if k not in saved.base or _canonical(saved.base[k]) != _canonical(v)})
        if not names:
            return saved
        grown = SweepSpec(base=saved.base, points=[*saved.points, *points], names=[*saved.names, *names])
        save_spec(out, grown)
        return grown
