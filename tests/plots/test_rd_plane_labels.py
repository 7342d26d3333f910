"""Run labels on the RD plane and the -ELBO vs R plot are placed apart (adjustText): no label
box overlaps another or covers a marker, moved labels get a leader line, and the merged labels
of coincident runs are kept."""

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.patches import FancyArrowPatch

from rdvae.plots import plot_elbo_rate, plot_rd_plane
from rdvae.plots.rd_plane import LABEL_LIMIT, MARKER_SIZE

FAMILIES = ("-+v", "--v", "+-v", "++v", "---", "+++")
CENTRES = ((5.0, 80.0), (8.0, 76.0), (30.0, 60.0), (32.0, 58.0), (100.0, 5.0))


def clustered_rows(n: int = 30, seed: int = 0) -> list[dict]:
    """n runs in five tight clusters (a couple of nats across on a 100-nat plane), as a sweep's
    runs crowd at low and high rate."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        cx, cy = CENTRES[i % len(CENTRES)]
        rate, distortion = cx + rng.normal(0, 1.5), cy + rng.normal(0, 1.5)
        beta = round([0.1, 0.5, 1.0, 1.1, 2.0][i % 5] + 0.01 * (i // 5), 2)
        rows.append({"family": FAMILIES[i % len(FAMILIES)], "beta": beta, "rate": rate,
                     "distortion": distortion, "elbo": -(rate + distortion)})
    return rows


def _rendered(fig):
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _labels(ax):
    return [t for t in ax.texts if t.get_text().startswith("β")]


@pytest.mark.parametrize("plot", [plot_rd_plane, plot_elbo_rate], ids=["rd_plane", "elbo_rate"])
def test_labels_do_not_overlap_each_other_or_the_markers(plot):
    rows = clustered_rows(30)
    fig = plot(rows, "clustered runs", labels=[f"β={r['beta']:g}" for r in rows])
    renderer = _rendered(fig)
    ax = fig.axes[0]
    texts = _labels(ax)
    shown = [t for t in texts if t.get_visible()]
    assert len(texts) >= 15 and len(shown) >= len(texts) - 2  # (almost) every label is drawn
    boxes = [t.get_window_extent(renderer) for t in shown]
    for i, a in enumerate(boxes):
        for j in range(i):
            assert not a.padded(-1).overlaps(boxes[j].padded(-1)), (shown[i].get_text(), shown[j].get_text())
    # no label covers a marker's centre, nor more than the margin of a marker
    y = [r["distortion"] for r in rows] if plot is plot_rd_plane else [-r["elbo"] for r in rows]
    centres = ax.transData.transform(np.column_stack([[r["rate"] for r in rows], y]))
    half = np.sqrt(MARKER_SIZE) / 2 * fig.dpi / 72
    for box, text in zip(boxes, shown, strict=True):
        for c in centres:
            assert not box.padded(-1).contains(*c), text.get_text()
            inner = box.padded(-(half - 2))
            assert not (inner.x0 < c[0] < inner.x1 and inner.y0 < c[1] < inner.y1), text.get_text()
    # labels stay inside the axes, and those moved away from their run have a thin leader line
    frame = ax.get_window_extent(renderer).padded(1)
    assert all(frame.contains(b.x0, b.y0) and frame.contains(b.x1, b.y1) for b in boxes)
    leaders = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert leaders and all(p.get_linewidth() <= 0.6 for p in leaders)


def test_coincident_runs_share_one_label_and_crowded_sweeps_have_none():
    rows = [{"family": "-+v", "beta": b, "rate": 10.0, "distortion": 70.0, "elbo": -80.0} for b in (0.5, 1.0)]
    rows.append({"family": "--v", "beta": 2.0, "rate": 40.0, "distortion": 45.0, "elbo": -85.0})
    fig = plot_rd_plane(rows, "t", labels=[f"β={r['beta']:g}" for r in rows])
    assert sorted(t.get_text() for t in _labels(fig.axes[0])) == ["β=0.5, 1", "β=2"]
    many = clustered_rows(LABEL_LIMIT, seed=1)
    assert _labels(plot_elbo_rate(many, "t", labels=[f"β={r['beta']:g}" for r in many]).axes[0])
    more = clustered_rows(LABEL_LIMIT + 1, seed=1)
    assert not _labels(plot_rd_plane(more, "t", labels=[f"β={r['beta']:g}" for r in more]).axes[0])
