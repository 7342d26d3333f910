"""A multi-rate VAE's rate-distortion curve against the points of a separate beta sweep.

Rows are results.csv rows (rate, distortion, beta): the multi-rate run's from
`rdvae eval RUN --betas ...`, the sweep's from `rdvae sweep`. Two ways to say how far apart
the curves are, both in nats:

- per beta: the multi-rate model at beta against the run trained at that beta, on the
  objective that run minimised, delta(D + beta R) (> 0: the multi-rate model is worse there),
  and on -ELBO = R + D;
- at equal rate: each curve is D(R) joined piecewise-linearly through its points in order of
  rate; over the rates both curves span, the area between them is integral |D_mr(R) - D_sweep(R)| dR
  (nats^2), its mean height area / span (nats), and the largest gap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..sweep import ResultsTable
from .style import new_figure, save_figure, styled
from .sweep_figures import PlotError, figures_folder, finished_rows

MULTI_RATE_COLOUR = "#d62728"
SWEEP_COLOUR = "#1f77b4"
AREA_COLOUR = "#f4a582"


def _curve(rows: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(R, D) sorted by rate."""
    pts = sorted((float(r["rate"]), float(r["distortion"])) for r in rows)
    if len(pts) < 2:
        raise ValueError(f"a curve needs at least 2 points, got {len(pts)}")
    rate, distortion = map(np.array, zip(*pts, strict=True))
    return rate, distortion


def area_between(curve_a: Sequence[dict], curve_b: Sequence[dict], points: int = 4001) -> dict:
    """Area between two D(R) curves (piecewise linear in R) over the rates both span:
    {'area', 'span', 'mean_gap', 'max_gap', 'rate_low', 'rate_high'} (area in nats^2, the
    rest in nats; gaps are |D_a - D_b|). Trapezoid rule on a grid of `points` rates, which is
    exact up to the kinks of |D_a - D_b| between grid points."""
    ra, da = _curve(curve_a)
    rb, db = _curve(curve_b)
    low, high = max(ra[0], rb[0]), min(ra[-1], rb[-1])
    if not high > low:
        return {"area": math.nan, "span": 0.0, "mean_gap": math.nan, "max_gap": math.nan,
                "rate_low": low, "rate_high": high}
    grid = np.linspace(low, high, points)
    gap = np.abs(np.interp(grid, ra, da) - np.interp(grid, rb, db))
    area = float(np.sum((gap[1:] + gap[:-1]) / 2 * np.diff(grid)))
    return {"area": area, "span": float(high - low), "mean_gap": area / float(high - low),
            "max_gap": float(gap.max()), "rate_low": float(low), "rate_high": float(high)}


def per_beta_gaps(multi_rate_rows: Sequence[dict], sweep_rows: Sequence[dict]) -> list[dict]:
    """For each beta both have: the two models' R, D and the multi-rate minus separate-run
    differences of D + beta R (the separate run's objective), of -ELBO and of D at equal R
    (the sweep's curve interpolated at the multi-rate point's rate; None outside its span)."""
    sweep_by_beta = {round(float(r["beta"]), 9): r for r in sweep_rows}
    rs, ds = _curve(sweep_rows)
    gaps = []
    for mr in sorted(multi_rate_rows, key=lambda r: float(r["beta"])):
        beta = float(mr["beta"])
        sep = sweep_by_beta.get(round(beta, 9))
        if sep is None:
            continue
        r_mr, d_mr, r_sep, d_sep = (float(mr["rate"]), float(mr["distortion"]),
                                    float(sep["rate"]), float(sep["distortion"]))
        inside = rs[0] <= r_mr <= rs[-1]
        gaps.append({
            "beta": beta, "rate_multi_rate": r_mr, "distortion_multi_rate": d_mr,
            "rate_separate": r_sep, "distortion_separate": d_sep,
            "objective_gap": (d_mr + beta * r_mr) - (d_sep + beta * r_sep),
            "neg_elbo_gap": (r_mr + d_mr) - (r_sep + d_sep),
            "distortion_gap_at_equal_rate": d_mr - float(np.interp(r_mr, rs, ds)) if inside else None,
        })
    return gaps


def compare_curves(multi_rate_rows: Sequence[dict], sweep_rows: Sequence[dict],
                   beta_range: tuple[float, float] | None = None) -> dict:
    """The per-beta gaps and the area between the curves, restricted to betas in `beta_range`
    (inclusive) when given: {'per_beta': [...], 'area': {...}, 'max_abs_objective_gap',
    'max_abs_distortion_gap_at_equal_rate'}."""
    def within(rows):
        if beta_range is None:
            return list(rows)
        lo, hi = beta_range
        return [r for r in rows if lo * (1 - 1e-9) <= float(r["beta"]) <= hi * (1 + 1e-9)]

    mr, sweep = within(multi_rate_rows), within(sweep_rows)
    gaps = per_beta_gaps(mr, sweep)
    at_equal_rate = [abs(g["distortion_gap_at_equal_rate"]) for g in gaps
                     if g["distortion_gap_at_equal_rate"] is not None]
    return {"per_beta": gaps, "area": area_between(mr, sweep),
            "max_abs_objective_gap": max((abs(g["objective_gap"]) for g in gaps), default=math.nan),
            "max_abs_distortion_gap_at_equal_rate": max(at_equal_rate, default=math.nan)}


def plot_multi_rate_overlay(multi_rate_rows: Sequence[dict], sweep_rows: Sequence[dict], title: str,
                            dense_rows: Sequence[dict] | None = None,
                            multi_rate_label: str = "multi-rate (one run)",
                            sweep_label: str = "separate β-VAE runs") -> Figure:
    """Left: the RD plane with the separate runs as points and the multi-rate curve through its
    evaluations (dense_rows: more betas for a smooth line), the area between shaded, betas
    labelled and dotted lines joining the two models at the same beta. Right: per beta, the
    multi-rate model's excess D + βR and -ELBO over the run trained at that β, and its D minus
    the sweep's D at equal R."""
    comparison = compare_curves(multi_rate_rows, sweep_rows)
    line_rows = list(dense_rows) if dense_rows else list(multi_rate_rows)
    rl, dl = _curve(line_rows)
    rm, dm = _curve(multi_rate_rows)
    rs, ds = _curve(sweep_rows)
    with styled():
        fig = new_figure(11.0, 4.6)
        ax, gap_ax = fig.subplots(1, 2, width_ratios=[1.25, 1])
        area = comparison["area"]
        if area["span"] > 0:
            grid = np.linspace(area["rate_low"], area["rate_high"], 800)
            ax.fill_between(grid, np.interp(grid, rm, dm), np.interp(grid, rs, ds), color=AREA_COLOUR,
                            alpha=0.55, linewidth=0, zorder=1,
                            label=f"area between: {area['area']:.1f} nats² "
                                  f"(mean gap {area['mean_gap']:.2f} nats)")
        ax.plot(rs, ds, color=SWEEP_COLOUR, linewidth=1, alpha=0.6, zorder=2)
        ax.scatter(rs, ds, s=46, color=SWEEP_COLOUR, zorder=4, label=sweep_label)
        betas = [float(r["beta"]) for r in line_rows if r.get("beta") is not None]
        span = f", β ∈ [{min(betas):g}, {max(betas):g}]" if betas else ""
        ax.plot(rl, dl, color=MULTI_RATE_COLOUR, linewidth=1.8, zorder=3, label=multi_rate_label + span)
        ax.scatter(rm, dm, s=26, marker="D", facecolors="white", edgecolors=MULTI_RATE_COLOUR,
                   linewidths=1.3, zorder=5)
        for i, g in enumerate(comparison["per_beta"]):   # the same beta on both: a thin connector
            ax.plot([g["rate_separate"], g["rate_multi_rate"]],
                    [g["distortion_separate"], g["distortion_multi_rate"]],
                    color="#888888", linewidth=0.7, linestyle=":", zorder=2,
                    label="same β, both models" if i == 0 else None)
        for row in sweep_rows:
            ax.annotate(f"β={float(row['beta']):g}", (float(row["rate"]), float(row["distortion"])),
                        textcoords="offset points", xytext=(6, 5), fontsize=7.5, color="#333333",
                        zorder=6)
        ax.set_xlabel("rate R (nats)")
        ax.set_ylabel("distortion D (nats)")
        ax.set_xlim(left=0)
        ax.set_title(title)
        ax.grid(True, color="#eeeeee", linewidth=0.6, zorder=0)
        ax.legend(loc="upper right", frameon=True, framealpha=0.9, edgecolor="#cccccc")

        gaps = comparison["per_beta"]
        betas = [g["beta"] for g in gaps]
        gap_ax.axhline(0, color="black", linewidth=0.8)
        gap_ax.plot(betas, [g["objective_gap"] for g in gaps], marker="o", color=MULTI_RATE_COLOUR,
                    label="Δ(D + βR), at the run's β")
        gap_ax.plot(betas, [g["neg_elbo_gap"] for g in gaps], marker="s", color="#555555",
                    linestyle="--", label="Δ(−ELBO) = Δ(R + D)")
        equal = [(g["beta"], g["distortion_gap_at_equal_rate"]) for g in gaps
                 if g["distortion_gap_at_equal_rate"] is not None]
        if equal:
            gap_ax.plot(*zip(*equal, strict=True), marker="^", color=SWEEP_COLOUR, linestyle=":",
                        label="ΔD at equal R")
        gap_ax.set_xscale("log")
        gap_ax.set_xlabel("β")
        gap_ax.set_ylabel("multi-rate − separate run (nats)")
        gap_ax.set_title("Gap per β (> 0: multi-rate worse)")
        gap_ax.grid(True, color="#eeeeee", linewidth=0.6, zorder=0)
        gap_ax.legend(loc="best", frameon=True, framealpha=0.9, edgecolor="#cccccc")
    return fig


def _beta_rows(directory: Path, what: str) -> list[dict]:
    table = ResultsTable(directory)
    if not table.path.exists():
        raise PlotError(f"{directory} has no results.csv; {what}")
    rows = [r for r in finished_rows(table.read()) if isinstance(r.get("beta"), int | float)]
    if len(rows) < 2:
        raise PlotError(f"{table.path} has {len(rows)} finished rows with a beta; the overlay needs 2+")
    return rows


def plot_multi_rate_run(run_dir: str | Path, sweep_dir: str | Path, out: str | Path | None = None,
                        formats: Sequence[str] = ("png", "svg")) -> dict:
    """The overlay of a multi-rate run's curve (its results.csv, from `rdvae eval RUN --betas ...`)
    on a beta sweep's points (SWEEP_DIR/results.csv), written as multi_rate_overlay.{png,svg}
    into `out` (default RUN_DIR/figures); returns {"files": [...], "comparison": {...}}."""
    run_dir, sweep_dir = Path(run_dir), Path(sweep_dir)
    mr = _beta_rows(run_dir, f"evaluate it first: rdvae eval {run_dir} --betas 0.1 0.2 0.5 1 2 5 10")
    sweep = _beta_rows(sweep_dir, f"run the sweep first: rdvae sweep --grid beta=... --out {sweep_dir}")
    family = mr[0].get("family", "multi-rate")
    title = f"{mr[0].get('dataset')}, {mr[0].get('split')} split: {family} (one run) vs a β sweep"
    files = save_figure(plot_multi_rate_overlay(mr, sweep, title),
                        (Path(out) if out is not None else figures_folder(run_dir)) / "multi_rate_overlay",
                        tuple(formats))
    return {"files": [str(f) for f in files], "comparison": compare_curves(mr, sweep)}
