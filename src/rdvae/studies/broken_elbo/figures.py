"""Which trained models the model panels of "Fixing a Broken ELBO" show, and the panels.

The paper shows reconstructions and samples of chosen runs of its sweep (figs. 4-6): fig. 4c
(and fig. 5) the families trained at beta = 1, fig. 4d models of (nearly) the same ELBO whose
rates differ widely, and fig. 6 a walk along the rate-distortion frontier, from autoencoders
(high rate R, low distortion D) through syntactic and semantic encoders to autodecoders
(R near 0, z ignored). The selection functions here are pure: they take sweep rows (dicts with
run_dir, family, beta, rate, distortion, elbo, regime, ...; R, D and -ELBO = R + D in nats) and
return some of them, ordered by rate descending (the paper's left-to-right order: the runs that
encode most on the left). `draw_model_panel` draws the chosen runs' reconstruction and sample
grids (rdvae.plots.grids).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from rdvae.rundir import RunDir
from rdvae.train import load_run

from .families import paper_code

# Fig. 4c: the four encoder x decoder combinations with the VampPrior marginal ("v", the
# marginal of the paper's best runs): simple (-) and complex (+) encoders, each with the simple
# factorised decoder (--v, +-v), which must put what it knows of x into z, and with the
# autoregressive PixelCNN decoder (-+v, ++v), which can model x without z. At beta = 1 the first
# pair sit at a useful rate while the PixelCNN pair fall towards the autodecoder (R ~ 0), the
# contrast fig. 4c is drawn for. The marginal is held fixed so that only the encoder and the
# decoder vary.
FIG4C_CODES = ("--v", "+-v", "-+v", "++v")
SAME_ELBO_FRACTION = 0.02  # fig. 4d's default band: 2% of the best -ELBO (about 1.6 nats at 80 nats)
BETA_TOLERANCE = 1e-6      # relative: betas read back from CSV or JSON compare equal within it


# --- selection -------------------------------------------------------------------------------

def _finite(row: dict, *keys: str) -> bool:
    return all(isinstance(row.get(k), int | float) and math.isfinite(row[k]) for k in keys)


def _neg_elbo(row: dict) -> float:
    """-ELBO = R + D (nats): from the row's elbo where it has one, else R + D."""
    return -row["elbo"] if _finite(row, "elbo") else row["rate"] + row["distortion"]


def _by_rate(rows: Sequence[dict]) -> list[dict]:
    """Rate descending (ties: lower -ELBO first, then family and beta, for a stable order)."""
    return sorted(rows, key=lambda r: (-r["rate"], _neg_elbo(r), str(r.get("family")), r.get("beta") or 0.0))


def _runs(rows: Sequence[dict]) -> list[dict]:
    """The rows with a finite rate and distortion (the runs that can be placed on the RD plane)."""
    return [r for r in rows if _finite(r, "rate", "distortion")]


def _spread_in_rate(runs: Sequence[dict], count: int) -> list[dict]:
    """Up to `count` of `runs`, spread evenly in rate: the lowest and the highest rate, and
    between them the run nearest each of `count` evenly spaced rates (each run at most once)."""
    if count < 1:
        return []
    runs = sorted(runs, key=lambda r: (r["rate"], _neg_elbo(r)))
    if len(runs) <= count:
        return list(runs)
    rates = np.array([r["rate"] for r in runs])
    targets = np.linspace(rates[0], rates[-1], count) if count > 1 else np.array([rates[-1]])
    chosen: list[int] = []
    for target in targets:
        free = [i for i in range(len(runs)) if i not in chosen]
        chosen.append(min(free, key=lambda i: (abs(rates[i] - target), i)))
    return [runs[i] for i in sorted(chosen)]


def families_at_beta(rows: Sequence[dict], beta: float = 1.0,
                     codes: Sequence[str] | None = None) -> list[dict]:
    """Fig. 4c / fig. 5: the runs trained at `beta` (compared within a relative 1e-6), one per
    paper family code (encoder, decoder, marginal: "-+v"; an "mlp-+v" family counts as "-+v"),
    ordered by rate descending, so that the syntactic encoders stand on the left and the
    autodecoders on the right. `codes` keeps only those families (e.g. FIG4C_CODES). Where a
    family has several runs at that beta (with and without KL annealing, several seeds), the one
    of lowest -ELBO is shown."""
    wanted = None if codes is None else set(codes)
    best: dict[str, dict] = {}
    for row in _runs(rows):
        b = row.get("beta")
        if not isinstance(b, int | float) or not math.isclose(b, beta, rel_tol=BETA_TOLERANCE, abs_tol=1e-12):
            continue
        code = paper_code(row["family"])
        if wanted is not None and code not in wanted:
            continue
        if code not in best or _neg_elbo(row) < _neg_elbo(best[code]):
            best[code] = row
    return _by_rate(best.values())


def _near_frontier(runs: Sequence[dict], tolerance: float) -> list[dict]:
    """The runs of the stepwise Pareto frontier, and the dominated runs within `tolerance` nats of
    it: whose distortion exceeds that of the best (lowest-distortion) frontier run of no higher rate,
    or whose rate exceeds that of the best (lowest-rate) frontier run of no higher distortion, by at
    most `tolerance`. These are the vertical and horizontal distances from the run to the frontier's
    staircase; a frontier run's are 0."""
    from rdvae.plots.frontier import pareto_frontier

    rate = [r["rate"] for r in runs]
    distortion = [r["distortion"] for r in runs]
    front = pareto_frontier(rate, distortion)
    near = []
    for row in runs:
        below = [distortion[f] for f in front if rate[f] <= row["rate"]]
        left = [rate[f] for f in front if distortion[f] <= row["distortion"]]
        d_gap = row["distortion"] - min(below) if below else math.inf
        r_gap = row["rate"] - min(left) if left else math.inf
        if min(d_gap, r_gap) <= tolerance:
            near.append(row)
    return near


def near_frontier(rows: Sequence[dict], tolerance: float | None = None) -> list[dict]:
    """The runs (of finite R and D) on the stepwise Pareto frontier or within `tolerance` nats of it
    (`_near_frontier`; default: fig. 4d's band, 2% of the best -ELBO among them)."""
    runs = [r for r in _runs(rows) if math.isfinite(_neg_elbo(r))]
    if not runs:
        return []
    if tolerance is None:
        tolerance = SAME_ELBO_FRACTION * abs(min(_neg_elbo(r) for r in runs))
    return _near_frontier(runs, tolerance)


def same_elbo(rows: Sequence[dict], count: int = 4, tolerance: float | None = None) -> list[dict]:
    """Fig. 4d: models of (nearly) the same ELBO but very different rates, the paper's point that
    the ELBO alone cannot tell an autoencoder from an autodecoder.

    The candidates are the runs on the stepwise Pareto frontier of the RD plane and those within
    `tolerance` nats of it (see `_near_frontier`). Of all bands of -ELBO `tolerance` nats wide
    (default: 2% of the best -ELBO among the runs), the one whose candidates span the widest range
    of rates is taken (ties: the band of lower -ELBO, i.e. the better models); up to `count` of
    its runs, spread evenly in rate from the lowest to the highest, are returned, ordered by
    rate descending. Every pair of runs returned differ in -ELBO by at most `tolerance`. Where no
    band holds two runs (a sparse sweep), the one candidate of lowest -ELBO is returned, and
    nothing for no runs."""
    runs = [r for r in _runs(rows) if math.isfinite(_neg_elbo(r))]
    if not runs or count < 1:
        return []
    if tolerance is None:
        tolerance = SAME_ELBO_FRACTION * abs(min(_neg_elbo(r) for r in runs))
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 nats, got {tolerance}")
    candidates = sorted(_near_frontier(runs, tolerance), key=_neg_elbo)
    best_band, best_spread = candidates[:1], -1.0
    for start, low in enumerate(candidates):
        band = [r for r in candidates[start:] if _neg_elbo(r) - _neg_elbo(low) <= tolerance]
        if len(band) < 2:
            continue
        spread = max(r["rate"] for r in band) - min(r["rate"] for r in band)
        if spread > best_spread:  # strictly wider: of equally wide bands the first (lowest -ELBO) wins
            best_band, best_spread = band, spread
    return _by_rate(_spread_in_rate(best_band, count))


def frontier_walk(rows: Sequence[dict], count: int = 8) -> list[dict]:
    """Fig. 6: a walk along the rate-distortion frontier. Up to `count` runs of the stepwise
    Pareto frontier (no run has both lower R and lower D), spread evenly in rate from the lowest
    to the highest (both ends always included), ordered by rate descending: from the
    autoencoding end (high R, low D) to the autodecoding end (R ~ 0, D ~ H)."""
    from rdvae.plots.frontier import pareto_frontier

    runs = _runs(rows)
    if not runs:
        return []
    front = [runs[i] for i in pareto_frontier([r["rate"] for r in runs], [r["distortion"] for r in runs])]
    return _by_rate(_spread_in_rate(front, count))


# --- drawing -----------------------------------------------------------------------------------

def panel_label(row: dict) -> str:
    """The caption of a model in a panel: family code and beta ("annealed" where it was KL-annealed),
    R and D (nats), regime."""
    name = paper_code(row["family"]) + (f" β={row['beta']:g}" if row.get("beta") is not None else "")
    lines = [name + (" annealed" if row.get("annealed") else ""),
             f"R={row['rate']:.1f} D={row['distortion']:.1f}"]
    if row.get("regime"):
        lines.append(str(row["regime"]))
    return "\n".join(lines)


def _data_key(run_dir: Path) -> str:
    """What decides a run's data (dataset, binarization, loader options): runs with the same key
    share one loaded Dataset."""
    config = RunDir(run_dir).read_config()
    return json.dumps([config.get("dataset"), config.get("binarize"), config.get("data") or {}],
                      sort_keys=True, default=str)


def draw_model_panel(sweep_dir: str | Path, chosen: Sequence[dict], out_stem: str | Path, title: str,
                     inputs: int = 5, z_draws: int = 2, decoder_draws: int = 5) -> list[str]:
    """Reconstructions and samples of the chosen runs, side by side in the given order (as the
    selection functions return them: rate descending). Each model is captioned by `panel_label`.

    <out_stem>_reconstructions: `inputs` test images (one per class where the dataset has
    labels, from the first run's test split; the same images for every model), each encoded
    `z_draws` times, z ~ e(z|x); per model a 'sample' column (one draw of d(x|z)) and an
    'average' one (the mean of `decoder_draws` draws). <out_stem>_samples: `inputs` draws
    z ~ m(z) from each model's marginal, decoded likewise. PNG and SVG; returns the paths (none
    when nothing is chosen).

    Memory stays at one model at a time: the runs are loaded from disk (sweep_dir / run_dir; an
    absolute run_dir as it is) while each grid is drawn and dropped after it, and runs on the
    same data share one loaded dataset."""
    from rdvae.plots import reconstruction_grid, samples_grid, save_figure
    from rdvae.plots.sweep_figures import pick_inputs

    if not chosen:
        return []
    sweep_dir = Path(sweep_dir)
    run_dirs = [sweep_dir / row["run_dir"] for row in chosen]
    datasets: dict[str, object] = {}

    def load(run_dir: Path):
        key = _data_key(run_dir)
        trained = load_run(run_dir, device="cpu", dataset=datasets.get(key))
        datasets.setdefault(key, trained.dataset)
        return trained

    first = load(run_dirs[0])
    data = first.dataset
    if len(data.event_shape) != 3:
        raise ValueError(f"{run_dirs[0]}: model panels need image data, but {data.name!r} has events of "
                         f"shape {tuple(data.event_shape)}")
    x = pick_inputs(data.split("test"), data.labels.get("test"), inputs)
    del first

    def models() -> Iterator[tuple[str, object]]:  # loaded one at a time as a grid draws them
        for row, run_dir in zip(chosen, run_dirs, strict=True):
            yield panel_label(row), load(run_dir).model

    out_stem = Path(out_stem)
    files = save_figure(
        reconstruction_grid(models(), x, f"{title}: reconstructions", z_draws=z_draws,
                            decoder_draws=decoder_draws),
        out_stem.with_name(out_stem.name + "_reconstructions"))
    files += save_figure(
        samples_grid(models(), f"{title}: samples z ~ m(z)", n=inputs, decoder_draws=decoder_draws),
        out_stem.with_name(out_stem.name + "_samples"))
    return [str(f) for f in files]
