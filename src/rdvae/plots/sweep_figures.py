"""All figures of a sweep directory from its results.csv and run directories."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..sweep import ResultsTable, load_spec
from ..train import load_run
from .frontier import pareto_frontier
from .grids import reconstruction_grid, samples_grid
from .rd_plane import plot_elbo_rate, plot_rd_plane
from .style import save_figure
from .surgery import plot_surgery

SYMBOLS = {"beta": "β", "target_rate": "σ", "free_bits": "λ"}


class PlotError(ValueError):
    """Nothing (or nothing sensible) to plot, with what to do."""


def finished_rows(rows: Sequence[dict]) -> list[dict]:
    """Rows of runs that finished with finite R and D."""
    return [r for r in rows if r.get("status") == "done" and all(
        isinstance(r.get(k), int | float) and math.isfinite(r[k]) for k in ("rate", "distortion"))]


def _value_key(value) -> str:
    """A field's value as one string, options in any order the same (a model's options read back from
    a config written with sorted keys equal the sweep's)."""
    return json.dumps(value, sort_keys=True, default=str)


def _varying(rows: Sequence[dict], fields: Sequence[str]) -> list[str]:
    return [f for f in fields if len({_value_key(r.get(f)) for r in rows}) > 1]


def _within_family(rows: Sequence[dict], fields: Sequence[str]) -> list[str]:
    """The fields that vary between runs of one family: a field set per family (its model
    options, epochs, annealing) says nothing the marker does not."""
    families: dict = {}
    for r in rows:
        families.setdefault(r.get("family"), []).append(r)
    groups = families.values()
    return [f for f in fields if any(len({_value_key(r.get(f)) for r in group}) > 1 for group in groups)]


def run_label(row: dict, fields: Sequence[str]) -> str:
    """`β=0.3`, `mlp-v β=0.3 seed=1`: the given fields of a run, beta etc. as paper symbols."""
    parts = []
    for f in fields:
        value = row.get(f)
        if value is None:
            continue
        text = f"{value:g}" if isinstance(value, float) else str(value)
        parts.append(text if f == "family" else f"{SYMBOLS.get(f, f.removeprefix('model.'))}={text}")
    return " ".join(parts)


def select_runs(rows: Sequence[dict], count: int) -> list[dict]:
    """Up to `count` runs of the Pareto frontier, spread evenly from low to high rate."""
    front = [rows[i] for i in pareto_frontier([r["rate"] for r in rows], [r["distortion"] for r in rows])]
    if len(front) <= count:
        return front
    picks = np.unique(np.round(np.linspace(0, len(front) - 1, count)).astype(int))
    return [front[i] for i in picks]


def pick_inputs(x: torch.Tensor, labels: torch.Tensor | None, n: int) -> torch.Tensor:
    """n inputs, one per class in class order when labels exist, else n evenly spaced through the
    split (some splits are stored sorted by class)."""
    if labels is None:
        return x[torch.linspace(0, len(x) - 1, min(n, len(x))).round().long()]
    chosen = []
    for c in torch.unique(labels).tolist():
        chosen.append(int(torch.nonzero(labels == c)[0]))
        if len(chosen) == n:
            break
    chosen += [i for i in range(len(x)) if i not in chosen][:n - len(chosen)]
    return x[chosen]


def figures_folder(folder: Path) -> Path:
    """FOLDER/figures, the default place of a sweep's or run's figures: never a link (a folder sent by
    someone else could point it anywhere)."""
    figures = Path(folder) / "figures"
    if figures.is_symlink():
        raise PlotError(f"{figures} is a symbolic link; figures are written only inside {folder} (remove "
                        "the link, or name a folder with --out)")
    return figures


def plot_sweep(sweep_dir: str | Path, out: str | Path | None = None, runs: Sequence[str] | None = None,
               max_runs: int = 6, examples: int = 5, z_draws: int = 2, samples: int = 8,
               formats: Sequence[str] = ("png", "svg"), grids: bool = True) -> dict:
    """Draw the RD plane, -ELBO vs R, and (for image data) reconstruction and sample grids of
    the chosen runs (`runs`: run directory names; default: up to `max_runs` frontier runs).
    Files go to `out` (default SWEEP_DIR/figures); returns {"files": [...], "runs": [...]}."""
    sweep_dir = Path(sweep_dir)
    table = ResultsTable(sweep_dir)
    if not table.path.exists():
        raise PlotError(f"{sweep_dir} has no results.csv; run `rdvae sweep --out {sweep_dir}` first")
    rows = finished_rows(table.read())
    if not rows:
        raise PlotError(f"no finished runs in {table.path} to plot (see its status/error columns)")
    spec = load_spec(sweep_dir)
    swept = spec.swept_fields if spec is not None else ["family", "beta"]
    out = Path(out) if out is not None else figures_folder(sweep_dir)
    files: list[Path] = []
    chosen_all: list[str] = []
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row.get("dataset"), row.get("split")), []).append(row)
    for (dataset, split), group in groups.items():
        suffix = "" if len(groups) == 1 else f"-{dataset}-{split}"
        where = f"{dataset}, {split} split"
        varying = _varying(group, swept)
        point_fields = _within_family(group, [f for f in varying if f != "family"])
        labels = [run_label(r, point_fields) for r in group]
        n = len(group)
        files += save_figure(plot_rd_plane(group, f"Rate-distortion plane: {where} ({n} runs)", labels),
                             out / f"rd_plane{suffix}", formats)
        files += save_figure(plot_elbo_rate(group, f"$-$ELBO vs rate: {where} ({n} runs)", labels),
                             out / f"elbo_rate{suffix}", formats)
        dissected = [{**r, "label": label} for r, label in zip(group, labels, strict=True)
                     if r.get("surgery_index_code_mi") is not None]
        if dissected:
            files += plot_surgery(dissected, out / f"surgery{suffix}",
                                  title=f"ELBO surgery: rate = MI + marginal KL ({where})",
                                  formats=formats)
        if not grids:
            continue
        # rows of a multi-rate run ("RUN/.#beta=...") are one model at several betas: no grids
        group = [r for r in group if (sweep_dir / r["run_dir"] / "config.json").exists()]
        chosen = _chosen(group, runs, max_runs)
        if not chosen:
            continue
        models, x, labels_of = _load(sweep_dir, chosen, varying, split, examples)
        chosen_all += [r["run_dir"] for r in chosen]
        if x is None:
            continue  # not image data
        files += save_figure(
            reconstruction_grid(list(zip(labels_of, models, strict=True)), x,
                                f"Reconstructions: {where}", z_draws=z_draws),
            out / f"reconstructions{suffix}", formats)
        files += save_figure(
            samples_grid(list(zip(labels_of, models, strict=True)), f"Samples z ~ m(z): {dataset}",
                         n=samples),
            out / f"samples{suffix}", formats)
    return {"files": [str(f) for f in files], "runs": chosen_all, "out": str(out)}


def _chosen(group: list[dict], runs: Sequence[str] | None, max_runs: int) -> list[dict]:
    if runs is None:  # high rate (autoencoding) on the left, as in fig. 4
        return sorted(select_runs(group, max_runs), key=lambda r: -r["rate"])
    wanted = {Path(r).name for r in runs}
    chosen = [r for r in group if Path(r["run_dir"]).name in wanted]
    missing = wanted - {Path(r["run_dir"]).name for r in chosen}
    if missing:
        names = ", ".join(Path(r["run_dir"]).name for r in group)
        raise PlotError(f"no finished run named {sorted(missing)}; finished runs: {names}")
    return sorted(chosen, key=lambda r: -r["rate"])


def _load(sweep_dir: Path, chosen: list[dict], varying: list[str], split: str, examples: int):
    datasets: dict[tuple, object] = {}
    models, labels = [], []
    x = None
    for row in chosen:
        trained = load_run(sweep_dir / row["run_dir"], device="cpu",
                           dataset=datasets.get((row["dataset"], _binarize(sweep_dir / row["run_dir"]))))
        datasets[(row["dataset"], trained.config.binarize)] = trained.dataset
        models.append(trained.model)
        labels.append(run_label(row, varying) or Path(row["run_dir"]).name)
        if x is None and len(trained.dataset.event_shape) == 3:
            ds = trained.dataset
            x = pick_inputs(ds.split(split), ds.labels.get(split), examples)
    return models, x, labels


def _binarize(run_dir: Path):
    from ..rundir import RunDir

    return RunDir(run_dir).read_config().get("binarize")
