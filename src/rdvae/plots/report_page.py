"""`rdvae report`: one self-contained HTML page of a sweep (or of one run) that works with the network
off: plotly with its JavaScript inlined, the run images as data URIs.

    the rate-distortion plane    hover: run, beta and the headline figures of every measure measured
                                 (R, D, ELBO, I_q, IW-NLL, AIS NLL, a plugin's, ...); click (or
                                 box-select) a run: its reconstructions and samples beside the plane
    -ELBO vs R                   the same runs, the same click
    ELBO surgery                 stacked bars of I_q(n; z) and KL(q(z) || m(z)), when measured
    results                      the table, sortable by any column (plotly's own menu): the headline
                                 keys of the registered measures (rdvae.evaluate.measures) that the runs
                                 hold, headed by their descriptions and units, and columns no registered
                                 measure declares (a plugin's not imported now) under their own names

The page's data (rows and images) is also embedded as JSON in <script id="rdvae-data">, so that a
reader (or a test) finds every plotted point without running the page.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

from ..rundir import CONFIG, RunDir, write_text
from ..sweep import ResultsTable, load_spec
from .style import family_style
from .sweep_figures import PlotError, finished_rows, pick_inputs, run_label, select_runs

TABLE_RUN_KEYS = ("epochs", "seed")   # of a run's metadata (rdvae.sweep.results.RUN_KEYS), shown in the table
NOT_SHOWN = ("run_dir", "status", "error", "subset")   # a row's bookkeeping
IMAGE_RUNS = 24        # runs whose reconstructions and samples the page carries (frontier first)
DATA_ID = "rdvae-data"
PLOTLY_SYMBOLS = {"o": "circle", "s": "square", "^": "triangle-up", "D": "diamond", "v": "triangle-down",
                  "p": "pentagon", "h": "hexagon", "*": "star", "X": "x", "P": "cross"}

# the one piece of JavaScript plotly has no option for: show the clicked run's images
SHOW_RUN_JS = """
function rdvaeShow(i) {
  var run = JSON.parse(document.getElementById('%(data)s').textContent).runs[i];
  document.getElementById('rdvae-run').textContent = run.label + ' (' + run.run_dir + ')';
  ['reconstructions', 'samples'].forEach(function (k) {
    var img = document.getElementById('rdvae-' + k);
    img.src = run[k] || ''; img.alt = run[k] ? k + ' of ' + run.run_dir : 'no images for this run';
  });
}
"""
ON_CLICK_JS = """
var gd = document.getElementById('{plot_id}');
gd.on('plotly_click', function (e) { rdvaeShow(e.points[0].customdata[0]); });
gd.on('plotly_selected', function (e) { if (e && e.points.length) rdvaeShow(e.points[0].customdata[0]); });
"""


def _plotly():
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise PlotError("rdvae report needs plotly, which is not installed: "
                        "pip install 'rdvae[report]'") from None
    return go


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _text(value, digits: int = 2) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) >= 0.01 or value == 0 else f"{value:.3g}"
    return str(value)


def report_rows(source: Path) -> tuple[list[dict], list[str], Path]:
    """The finished runs of a sweep directory (results.csv) or of one run directory, the fields that
    label them, and the folder their run_dir paths are relative to."""
    source = Path(source)
    table = ResultsTable(source)
    if table.path.exists():
        rows = finished_rows(table.read())
        spec = load_spec(source)
        swept = spec.swept_fields if spec is not None else ["family", "beta"]
        where = source
    elif (source / CONFIG).exists():
        summary = RunDir(source).read_summary()
        rows = finished_rows([{**summary, "run_dir": source.name}])
        swept, where = ["family", "beta"], source.parent
    else:
        raise PlotError(f"{source} is neither a sweep directory (results.csv) nor a run directory "
                        f"(config.json); give one of them")
    if not rows:
        raise PlotError(f"no finished runs in {source} to report (see results.csv's status and error)")
    return rows, swept, where


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def run_images(run_dir: Path, label: str, examples: int = 8) -> dict:
    """A run's reconstructions and samples as PNG data URIs ({} for data that are not images)."""
    from ..train import load_run
    from .grids import reconstruction_grid, samples_grid

    trained = load_run(run_dir, device="cpu")
    ds = trained.dataset
    if len(ds.event_shape) != 3:
        return {}
    split = trained.config.final_split
    x = pick_inputs(ds.split(split), ds.labels.get(split), examples)
    models = [(label, trained.model)]
    recon = reconstruction_grid(models, x, f"Reconstructions ({split})", z_draws=1)
    return {"reconstructions": _png(recon),
            "samples": _png(samples_grid(models, "Samples z ~ m(z)", n=examples))}


def shown_keys(runs: list[dict], swept: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """The measured keys the page shows (rdvae.evaluate.measures.shown_keys): the registered measures'
    headline keys that the runs hold, then numeric columns that no registered measure declares and that are
    not the runs' metadata, swept fields or bookkeeping."""
    from ..evaluate.measures import shown_keys as measured
    from ..sweep.results import RUN_KEYS

    return measured(runs, exclude=(*RUN_KEYS, *swept, *NOT_SHOWN, "index", "neg_elbo"))


def _header(key: str) -> str:
    from ..evaluate.measures import key_label

    return "run" if key == "run_dir" else key_label(key)


def _scatter_figure(go, runs: list[dict], y_key: str, title: str, y_title: str, hover: Sequence[str]):
    """One trace per family; customdata [index, run, beta, *the hover keys' values] feeds hover and click."""
    template = "<b>%{customdata[1]}</b><br>beta %{customdata[2]}" + "".join(
        f"<br>{html.escape(_header(key))} %{{customdata[{3 + i}]}}" for i, key in enumerate(hover))
    figure = go.Figure()
    for family in dict.fromkeys(r["family"] for r in runs):
        mine = [r for r in runs if r["family"] == family]
        style = family_style(family)   # its shape (the marginal); colours: plotly's cycle, one per family
        figure.add_trace(go.Scatter(
            x=[r["rate"] for r in mine], y=[r[y_key] for r in mine], mode="markers", name=str(family),
            marker={"size": 11, "symbol": PLOTLY_SYMBOLS.get(style.marker, "circle"),
                    "line": {"width": 1, "color": "#333"}},
            customdata=[[r["index"], r["run_dir"], _text(r.get("beta"), 3), *(_text(r.get(k)) for k in hover)]
                        for r in mine],
            hovertemplate=template + "<extra></extra>"))
    figure.update_layout(title=title, xaxis_title="rate R (nats)", yaxis_title=y_title, height=460,
                         template="plotly_white", clickmode="event+select", dragmode="select",
                         legend_title_text="family", margin={"l": 60, "r": 20, "t": 50, "b": 50})
    return figure


def _surgery_figure(go, runs: list[dict]):
    cut = [r for r in runs
           if _number(r.get("surgery_index_code_mi")) and _number(r.get("surgery_marginal_kl"))]
    if not cut:
        return None
    names = [r["label"] or r["run_dir"] for r in cut]
    figure = go.Figure([
        go.Bar(x=names, y=[r["surgery_index_code_mi"] for r in cut], name="index-code MI I_q(n;z)",
               marker_color="#4c72b0"),
        go.Bar(x=names, y=[r["surgery_marginal_kl"] for r in cut], name="marginal KL(q(z) || m(z))",
               marker_color="#dd8452")])
    figure.update_layout(barmode="stack", title="ELBO surgery: rate = MI + marginal KL", yaxis_title="nats",
                         template="plotly_white", height=380)
    return figure


def _table_figure(go, runs: list[dict], columns: Sequence[str]):
    def column_values(order):
        return [[_text(runs[i].get(c)) for i in order] for c in columns]

    def order_by(column: str, descending: bool) -> list[int]:
        have = [i for i in range(len(runs)) if runs[i].get(column) is not None]
        rest = [i for i in range(len(runs)) if runs[i].get(column) is None]
        key = (lambda i: runs[i][column]) if all(_number(runs[i][column]) for i in have) else (
            lambda i: str(runs[i][column]))
        return sorted(have, key=key, reverse=descending) + rest

    figure = go.Figure(go.Table(
        header={"values": [_header(c) for c in columns], "fill_color": "#eeeeee", "align": "left"},
        cells={"values": column_values(range(len(runs))), "align": "left"}))
    buttons = [{"label": f"{_header(c)} {'↓' if down else '↑'}", "method": "restyle",
                "args": [{"cells.values": [column_values(order_by(c, down))]}]}
               for c in columns for down in (False, True)]
    figure.update_layout(title="Results (sort with the menu)", height=120 + 28 * len(runs),
                         updatemenus=[{"buttons": buttons, "direction": "down", "x": 1.0, "xanchor": "right",
                                       "y": 1.12, "yanchor": "top", "showactive": True}],
                         margin={"l": 10, "r": 10, "t": 70, "b": 10})
    return figure


def report_page(source: str | Path, out: str | Path, image_runs: int = IMAGE_RUNS) -> dict:
    """Write the report of sweep or run directory `source` to the HTML file `out`; returns what it holds."""
    go = _plotly()
    rows, swept, where = report_rows(Path(source))
    varying = [f for f in swept
               if len({json.dumps(r.get(f), sort_keys=True, default=str) for r in rows}) > 1]
    with_images = {r["run_dir"] for r in select_runs(rows, image_runs)} if len(rows) > image_runs else None
    runs = []
    for index, row in enumerate(rows):
        label = run_label(row, varying) or Path(row["run_dir"]).name
        run = {**row, "index": index, "label": label}
        chosen = with_images is None or row["run_dir"] in with_images
        if chosen and (where / row["run_dir"] / CONFIG).exists():
            run.update(run_images(where / row["run_dir"], label))
        runs.append(run)
    for run in runs:
        run["neg_elbo"] = -run["elbo"]
    headline, other = shown_keys(runs, swept)
    figures = [("rd-plane", _scatter_figure(go, runs, "distortion", "Rate-distortion plane",
                                            "distortion D (nats)", headline)),
               ("elbo-rate", _scatter_figure(go, runs, "neg_elbo", "-ELBO vs rate", "-ELBO = R + D (nats)",
                                             headline))]
    surgery = _surgery_figure(go, runs)
    if surgery is not None:
        figures.append(("surgery", surgery))
    table = [*headline, *other, *(k for k in TABLE_RUN_KEYS if any(r.get(k) is not None for r in runs))]
    columns = ["run_dir", *[f for f in varying if f != "run_dir"], *[c for c in table if c not in varying]]
    figures.append(("results", _table_figure(go, runs, columns)))
    parts = []
    for i, (plot_id, figure) in enumerate(figures):
        script = ON_CLICK_JS if plot_id in ("rd-plane", "elbo-rate") else None
        parts.append((plot_id, figure.to_html(full_html=False, include_plotlyjs=i == 0, div_id=plot_id,
                                              post_script=script, config={"displaylogo": False})))
    keep = list(dict.fromkeys(("index", "run_dir", "label", "family", "beta", *headline, *other,
                               "reconstructions", "samples", *varying)))
    data = {"source": str(source), "keys": {k: _header(k) for k in (*headline, *other)},
            "runs": [{k: r.get(k) for k in keep} for r in runs]}
    text = _page(Path(source).name, parts, data)
    write_text(Path(out), text)
    return {"out": str(out), "runs": len(runs), "with_images": sum("samples" in r for r in runs),
            "figures": [plot_id for plot_id, _ in figures], "bytes": len(text.encode())}


def _page(name: str, parts: list[tuple[str, str]], data: dict) -> str:
    blob = json.dumps(data, sort_keys=True, default=str).replace("</", "<\\/")
    divs = dict(parts)
    rest = "\n".join(f'<section>{div}</section>' for plot_id, div in parts if plot_id not in ("rd-plane",))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>rdvae report: {html.escape(name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
.top {{ display: grid; grid-template-columns: minmax(0, 1fr) 400px; gap: 1.5em; align-items: start; }}
#rdvae-panel {{ display: flex; gap: 0.5em; flex-wrap: wrap; }}
#rdvae-panel h3 {{ width: 100%; margin: 0.3em 0; font-size: 1em; }}
#rdvae-panel img {{ max-width: 195px; max-height: 520px; display: block; }}
.hint {{ color: #666; font-size: 0.9em; }}
</style>
<script type="application/json" id="{DATA_ID}">{blob}</script>
<script>{SHOW_RUN_JS % {"data": DATA_ID}}</script>
</head><body>
<h1>rdvae report: {html.escape(name)}</h1>
<p class="hint">{len(data["runs"])} runs; nats per example. Hover a point for its figures; click or
box-select a run to see its reconstructions and samples.</p>
<div class="top"><section>{divs["rd-plane"]}</section>
<div id="rdvae-panel"><h3 id="rdvae-run">click a run</h3>
<img id="rdvae-reconstructions" alt=""><img id="rdvae-samples" alt=""></div></div>
{rest}
</body></html>
"""
