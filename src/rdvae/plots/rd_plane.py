"""The rate-distortion plane (fig. 3a) and -ELBO against rate (fig. 3b), in nats.

Both take sweep rows (dicts with rate, distortion, elbo, optional iw_nll, family, beta) and
return a matplotlib Figure; `labels` annotates each run (e.g. its beta). Labels of runs on the
same spot are merged, and the rest are pushed apart by adjustText so that no label covers
another label, a marker or the legend; a thin leader line joins a moved label to its run.
Above LABEL_LIMIT runs no labels are drawn (they would fill the plane).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from adjustText import adjust_text
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.transforms import Bbox

from .frontier import convex_hull_frontier, entropy_upper_bound, pareto_frontier, stepwise
from .style import family_legend_handles, family_style, new_figure, styled

# adjustText logs (through a deprecated call) when a label is wider than the axes; the labels that
# still collide after it are hidden here, so its messages only repeat what the figure shows
logging.getLogger("adjustText").setLevel(logging.ERROR)

INFEASIBLE = "#e6e6e6"
FRONTIER_COLOUR = "#333333"
HULL_COLOUR = "#ff7f0e"
LABEL_LIMIT = 60         # runs: above this many the plots carry no run labels
LABEL_COLOUR = "#444444"
LEADER_COLOUR = "#999999"
MARKER_SIZE = 42         # points^2, as scatter's s
LABEL_ITERATIONS = 200   # adjustText iterations at most (a fixed count, so the layout is reproducible)


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


def _markers(ax, rows, x, y, labels) -> list:
    """A marker per run in its family's style, and the runs' labels as texts on their points
    (not yet placed: `_place_labels` moves them apart once the figure is laid out). Returns the
    texts with the point each labels."""
    for family in dict.fromkeys(r["family"] for r in rows):
        idx = [i for i, r in enumerate(rows) if r["family"] == family]
        ax.scatter(x[idx], y[idx], s=MARKER_SIZE, zorder=4, clip_on=False,
                   **family_style(family).scatter_kwargs())
    if labels is None or len(rows) > LABEL_LIMIT:
        return []
    placed = []
    for (xi, yi), texts in _coincident_labels(x, y, labels).items():
        text = ax.text(xi, yi, ", ".join(texts), fontsize=7, color=LABEL_COLOUR, zorder=5, ha="left",
                       va="bottom")
        text.set_in_layout(False)  # the layout is fixed before the labels move
        placed.append((text, (xi, yi)))
    return placed


def _place_labels(ax, placed: list, x, y, obstacles=(), freeze_legend: bool = False) -> None:
    """Move the run labels so that none overlaps another, a marker, the legend or the
    `obstacles` (other texts of the plot): adjustText, run for a fixed number of iterations
    after the figure is laid out, with a thin leader line from a moved label to its point.
    (adjustText's swapping of labels whose leader lines cross is off: it keeps crowded layouts
    from settling.) A label that still overlaps another label or a marker afterwards (a crowded
    plot) is dropped rather than drawn over it. `freeze_legend` pins a loc="best" legend where
    the layout put it, so that it does not jump onto the moved labels when the figure is drawn
    again."""
    if not placed:
        return
    fig = ax.figure
    fig.draw_without_rendering()  # constrained layout, equal aspect and the legend settle here
    legend = ax.get_legend()
    if legend is not None and freeze_legend and legend.get_bbox_to_anchor().bounds == ax.bbox.bounds:
        corner = ax.transAxes.inverted().transform(legend.get_window_extent().p0)
        legend.set_loc(tuple(float(c) for c in corner))
    to_data = ax.transData.inverted()
    half = np.sqrt(MARKER_SIZE) / 2 * fig.dpi / 72  # a marker's half-width in pixels
    radius = half + 1.5
    centres = ax.transData.transform(np.column_stack([x, y]))
    boxes = [Bbox(to_data.transform([c - radius, c + radius])) for c in centres]
    for artist in ([legend] if legend is not None else []) + list(obstacles):
        boxes.append(Bbox(to_data.transform(artist.get_window_extent().get_points())))
    texts = [text for text, _ in placed]
    _, leaders = adjust_text(
        texts, objects=boxes, target_x=[p[0] for _, p in placed], target_y=[p[1] for _, p in placed], ax=ax,
        expand=(1.15, 1.3), iter_lim=LABEL_ITERATIONS, time_lim=None, ensure_inside_axes=True,
        prevent_crossings=False,
        min_arrow_len=radius + 4,
        arrowprops={"arrowstyle": "-", "color": LEADER_COLOUR, "linewidth": 0.5, "shrinkA": 1,
                    "shrinkB": radius * 72 / fig.dpi})
    for artist in (*texts, *leaders):
        artist.set_in_layout(False)
    # a text's box has a little blank around the glyphs: a marker may graze it by a pixel or two
    markers = [Bbox([c - half + 2, c + half - 2]) for c in ax.transData.transform(np.column_stack([x, y]))]
    _drop_overlapping(texts, leaders, fig, markers)


def _drop_overlapping(texts, leaders, fig, markers=()) -> list:
    """Hide each label that overlaps a marker (display boxes) or, by more than a pixel, a label
    kept before it, with its leader line; returns the hidden texts."""
    renderer = fig.canvas.get_renderer() if hasattr(fig.canvas, "get_renderer") else None
    if renderer is None:
        from matplotlib.backend_bases import _get_renderer

        renderer = _get_renderer(fig)
    kept, hidden = [], []
    for text in texts:
        box = text.get_window_extent(renderer).padded(-1)
        if any(box.overlaps(other) for other in (*markers, *kept)):
            text.set_visible(False)
            hidden.append(text)
        else:
            kept.append(box)
    for leader in leaders:
        if getattr(leader, "patchA", None) in hidden:
            leader.set_visible(False)
    return hidden


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


CURVE_STYLES = ("-", "--", ":", "-.")   # the curves of one family, in turn


def _curves(ax, curves: Sequence[dict]) -> list:
    """Each curve ({"rate", "distortion", "family", "label"}: e.g. a decoder's AIS rate-distortion curve)
    as a line in its family's colour, the curves of one family told apart by line style."""
    lines, seen = [], {}
    for curve in curves:
        turn = seen.setdefault(curve["family"], 0)
        seen[curve["family"]] += 1
        (line,) = ax.plot(curve["rate"], curve["distortion"], color=family_style(curve["family"]).colour,
                          linestyle=CURVE_STYLES[turn % len(CURVE_STYLES)], linewidth=1.4, zorder=3,
                          label=curve["label"])
        lines.append(line)
    return lines


def plot_rd_plane(rows: Sequence[dict], title: str, labels: Sequence[str] | None = None,
                  curves: Sequence[dict] = ()) -> Figure:
    """Fig. 3a: one marker per run at (R, D); the line D = H_hat - R from (0, H_hat) to
    (H_hat, 0) with the infeasible region below it shaded; the stepwise Pareto frontier; the
    convex hull of the runs; `curves` (dicts with rate, distortion, family and label), drawn as lines
    in the view the runs set.

    Distortions that are negative log-densities (Gaussian decoders on continuous data) can be negative
    and far from the rate's scale; then there is no triangle (D >= 0 does not bound them) and the axes
    are fitted to the points and curves instead of the square from 0."""
    rate, distortion = _rd(rows)
    h_hat = entropy_upper_bound(rows)
    density = h_hat <= 0 or distortion.min() < 0
    top = 1.05 * max(h_hat, rate.max(), distortion.max())
    with styled():
        fig = new_figure(6.0, 5.4)
        ax = fig.add_subplot()
        lines, obstacles = [], []
        if not density:
            ax.fill([0, h_hat, 0], [0, 0, h_hat], color=INFEASIBLE, zorder=0, linewidth=0)
            obstacles.append(ax.text(0.2 * h_hat, 0.2 * h_hat, "infeasible\n$R + D < \\hat H$", ha="center",
                                     va="center", fontsize=9, color="#777777", zorder=1))
            lines += ax.plot([0, h_hat], [h_hat, 0], linestyle="--", color="black", linewidth=1, zorder=1,
                             label=f"$D = \\hat H - R$,  $\\hat H$ = {h_hat:.2f}")
        front = pareto_frontier(rate, distortion)
        sx, sy = stepwise(rate, distortion, front, top, top)
        (f_line,) = ax.plot(sx, sy, color=FRONTIER_COLOUR, linewidth=1.2, zorder=3,
                            label="Pareto frontier (stepwise)")
        hull = convex_hull_frontier(rate, distortion)
        (c_line,) = ax.plot(rate[hull], distortion[hull], color=HULL_COLOUR, linewidth=1.6, zorder=3,
                            linestyle=(0, (4, 2)), label="convex hull")
        _trajectories(ax, rows, rate, distortion)
        curve_lines = _curves(ax, curves)
        placed = _markers(ax, rows, rate, distortion, labels)
        if density:
            xs = np.concatenate([rate, *(np.asarray(c["rate"], float) for c in curves)])
            ys = np.concatenate([distortion, *(np.asarray(c["distortion"], float) for c in curves)])
            x_pad, y_pad = (0.06 * (v.max() - v.min()) + 1e-3 for v in (xs, ys))
            ax.set_xlim(min(0.0, xs.min()) - x_pad, xs.max() + x_pad)   # rates from 0
            ax.set_ylim(ys.min() - y_pad, ys.max() + y_pad)
        else:
            ax.set_xlim(0, top)
            ax.set_ylim(0, top)
            ax.set_aspect("equal")
        ax.set_xlabel("rate R (nats)")
        ax.set_ylabel("distortion D (nats)")
        ax.set_title(title)
        ax.grid(True, color="#eeeeee", linewidth=0.6, zorder=0)
        _legend(ax, rows, [*lines, f_line, c_line, *curve_lines], "upper right")
        _place_labels(ax, placed, rate, distortion, obstacles=obstacles)
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
        placed = _markers(ax, rows, rate, neg_elbo, labels)
        ax.set_xlim(0, right)
        ax.set_ylim(low - pad, high + pad)
        ax.set_xlabel("rate R (nats)")
        ax.set_ylabel("$-$ELBO = R + D (nats)")
        ax.set_title(title)
        ax.grid(True, color="#eeeeee", linewidth=0.6, zorder=0)
        _legend(ax, rows, handles, "best")
        _place_labels(ax, placed, rate, neg_elbo, freeze_legend=True)
    return fig
