"""The rate-distortion plane (fig. 3a) and -ELBO against rate (fig. 3b), in nats.

Both take sweep rows (dicts with rate, distortion, elbo, optional iw_nll, family, beta) and
return a matplotlib Figure; `labels` annotates each run (e.g. its beta).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .frontier import convex_hull_frontier, entropy_upper_bound, pareto_frontier, stepwise
from .style import family_legend_handles, family_style, new_figure, styled

INFEASIBLE = "#e6e6e6"
FRONTIER_COLOUR = "#333333"
HULL_COLOUR = "#ff7f0e"


def _rd(rows: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    if not rows:
        raise ValueError("no finished runs to plot")
    return (np.array([r["rate"] for r in rows], dtype=float),
            np.array([r["distortion"] for r in rows], dtype=float))


def _trajectories(ax, rows, x, y) -> None:
    """Join the runs of each family in order of beta (thin line in the family's colour)."""
    by_family: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        if row.get("beta") is not None:
            by_family.setdefault(row["family"], []).append(i)
    for family, idx in by_family.items():
        if len(idx) > 1:
            idx = sorted(idx, key=lambda i: rows[i]["beta"])
            ax.plot(x[idx], y[idx], color=family_style(family).colour, alpha=0.35, linewidth=1, zorder=2)


def _markers(ax, rows, x, y, labels) -> None:
    for family in dict.fromkeys(r["family"] for r in rows):
        idx = [i for i, r in enumerate(rows) if r["family"] == family]
        ax.scatter(x[idx], y[idx], s=42, zorder=4, clip_on=False, **family_style(family).scatter_kwargs())
    if labels is None or len(rows) > 40:
        return
    for (xi, yi), texts in _coincident_labels(x, y, labels).items():
        ax.annotate(", ".join(texts), (xi, yi), textcoords="offset points", xytext=(5, 4), fontsize=7,
                    color="#444444", zorder=5)


def _coincident_labels(x, y, labels, tolerance: float = 0.01, same_text: float = 0.1) -> dict:
    """Labels of runs that sit (almost) on the same spot joined into one, and a label repeated
    by a nearby run (the same beta in two families) said once: {(x, y): [labels]}."""
    span = max(np.ptp(x), np.ptp(y), 1e-9)
    groups: dict[tuple, list[str]] = {}
    for xi, yi, text in zip(x, y, labels, strict=True):
        if not text:
            continue
        for key, texts in groups.items():
            dx, dy = abs(key[0] - xi) / span, abs(key[1] - yi) / span
            if max(dx, dy) <= same_text and text in texts:
                break
            if max(dx, dy) <= tolerance:
                texts.append(text)
                break
        else:
            groups[(xi, yi)] = [text]
    return {k: _shorten(v) for k, v in groups.items()}


def _shorten(texts: list[str]) -> list[str]:
    """['β=5', 'β=10'] -> ['β=5', '10']: the shared 'name=' prefix said once."""
    names = {t.split("=", 1)[0] for t in texts if "=" in t and " " not in t}
    if len(names) == 1 and all("=" in t and " " not in t for t in texts):
        return [texts[0], *(t.split("=", 1)[1] for t in texts[1:])]
    return texts


def _legend(ax, rows, extra_handles, loc: str) -> None:
    """Inside the axes when short; beside them (the figure widened) when it would hide runs."""
    handles = [*extra_handles, *family_legend_handles(list(dict.fromkeys(r["family"] for r in rows)))]
    style = {"frameon": True, "framealpha": 0.9, "edgecolor": "#cccccc"}
    if len(handles) <= 8:
        ax.legend(handles=handles, loc=loc, **style)
        return
    fig = ax.figure
    width, height = fig.get_size_inches()
    fig.set_size_inches(width + 2.6, height)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, **style)


def plot_rd_plane(rows: Sequence[dict], title: str, labels: Sequence[str] | None = None) -> Figure:
    """Fig. 3a: one marker per run at (R, D); the line D = H_hat - R from (0, H_hat) to
    (H_hat, 0) with the infeasible region below it shaded; the stepwise Pareto frontier; the
    convex hull of the runs."""
    rate, distortion = _rd(rows)
    h_hat = entropy_upper_bound(rows)
    top = 1.05 * max(h_hat, rate.max(), distortion.max())
    with styled():
        fig = new_figure(6.0, 5.4)
        ax = fig.add_subplot()
        ax.fill([0, h_hat, 0], [0, 0, h_hat], color=INFEASIBLE, zorder=0, linewidth=0)
        ax.text(0.2 * h_hat, 0.2 * h_hat, "infeasible\n$R + D < \\hat H$", ha="center", va="center",
                fontsize=9, color="#777777", zorder=1)
        (h_line,) = ax.plot([0, h_hat], [h_hat, 0], linestyle="--", color="black", linewidth=1, zorder=1,
                            label=f"$D = \\hat H - R$,  $\\hat H$ = {h_hat:.2f}")
        front = pareto_frontier(rate, distortion)
        sx, sy = stepwise(rate, distortion, front, top, top)
        (f_line,) = ax.plot(sx, sy, color=FRONTIER_COLOUR, linewidth=1.2, zorder=3,
                            label="Pareto frontier (stepwise)")
        hull = convex_hull_frontier(rate, distortion)
        (c_line,) = ax.plot(rate[hull], distortion[hull], color=HULL_COLOUR, linewidth=1.6, zorder=3,
                            linestyle=(0, (4, 2)), label="convex hull")
        _trajectories(ax, rows, rate, distortion)
        _markers(ax, rows, rate, distortion, labels)
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_aspect("equal")
        ax.set_xlabel("rate R (nats)")
        ax.set_ylabel("distortion D (nats)")
        ax.set_title(title)
        ax.grid(True, color="#eeeeee", linewidth=0.6, zorder=0)
        _legend(ax, rows, [h_line, f_line, c_line], "upper right")
    return fig


def plot_elbo_rate(rows: Sequence[dict], title: str, labels: Sequence[str] | None = None) -> Figure:
    """Fig. 3b: -ELBO = R + D against R, with H_hat and the region below max(H_hat, R)
    (D >= 0 and R + D >= H) shaded."""
    rate, distortion = _rd(rows)
    neg_elbo = rate + distortion
    h_hat = entropy_upper_bound(rows)
    right = 1.12 * max(rate.max(), h_hat * 0.25)
    low = min(h_hat, neg_elbo.min())
    high = max(neg_elbo.max(), right)
    pad = 0.06 * (high - low) + 1e-3
    with styled():
        fig = new_figure(6.0, 4.4)
        ax = fig.add_subplot()
        grid = np.linspace(0, right, 200)
        floor = np.maximum(h_hat, grid)
        ax.fill_between(grid, low - pad, floor, color=INFEASIBLE, zorder=0, linewidth=0)
        (h_line,) = ax.plot([0, right], [h_hat, h_hat], linestyle="--", color="black", linewidth=1,
                            label=f"$\\hat H$ = {h_hat:.2f}")
        handles = [h_line, Patch(color=INFEASIBLE, label="infeasible: $R + D < \\hat H$ or $D < 0$")]
        if right > low:  # the autoencoding limit -ELBO = R (D = 0) is in view
            (d_line,) = ax.plot(grid, grid, linestyle=":", color="#777777", linewidth=1, label="$D = 0$")
            handles.append(d_line)
        _trajectories(ax, rows, rate, neg_elbo)
        _markers(ax, rows, rate, neg_elbo, labels)
        ax.set_xlim(0, right)
        ax.set_ylim(low - pad, high + pad)
        ax.set_xlabel("rate R (nats)")
        ax.set_ylabel("$-$ELBO = R + D (nats)")
        ax.set_title(title)
        ax.grid(True, color="#eeeeee", linewidth=0.6, zorder=0)
        _legend(ax, rows, handles, "best")
    return fig
