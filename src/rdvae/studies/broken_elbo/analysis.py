"""The analysis of the MNIST grid's finished runs, from its rows alone: regimes against the grid's
H_hat, the Pareto frontier, the section-4 claims (claims), the runs the model panels would show
(figures), the fig. 4 and all-runs tables, and figs. 3a/b (the RD plane, -ELBO against R).

The rows come from a sweep folder (study.analyse_mnist, which adds what needs the trained models:
class agreement and the model panels) or from results CSVs written by earlier analyses
(`read_results`), e.g. the committed docs/results/broken-elbo-results.csv together with the CSV of
a folder that trained further stages: `reanalyse` combines them (a run named in several CSVs is
taken from the last) and writes the analysis without any trained model.

    python -m rdvae.studies.broken_elbo docs/results/broken-elbo-results.csv \\
        [runs/be-cpu/mnist/broken_elbo_results.csv ...] --out DIR
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path

from rdvae.rundir import write_json, write_text

from ..common import claims_table, markdown_table, write_csv
from . import claims
from . import figures as panels
from .families import paper_code
from .paper import FIG4_FAMILY, PAPER_FIG4, PAPER_H_HAT
from .regimes import regime
from .stages import stage_of

# the columns of broken_elbo_results.csv, one row per finished run
RESULT_COLUMNS = ("family", "code", "beta", "annealed", "stage", "rate", "distortion", "elbo", "mutual_info",
                  "active_units", "regime", "class_agreement", "class_chance", "class_kappa", "on_frontier",
                  "epochs", "epochs_trained", "converged", "plateau_gain", "train_seconds", "run_dir")
FLOAT_COLUMNS = ("beta", "rate", "distortion", "elbo", "mutual_info", "class_agreement", "class_chance",
                 "class_kappa", "plateau_gain", "train_seconds")
INT_COLUMNS = ("active_units", "epochs", "epochs_trained")
BOOL_COLUMNS = ("annealed", "on_frontier", "converged")
BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


# --- rows from a CSV ---------------------------------------------------------------------------------

def _parse(column: str, text: str, where: str):
    """A cell of a results CSV as its column's type (empty: None); ValueError naming the cell."""
    if text is None or text == "":
        return None
    try:
        if column in FLOAT_COLUMNS:
            return float(text)
        if column in INT_COLUMNS:
            return int(float(text))
    except ValueError:
        raise ValueError(f"{where}: {column}={text!r} is not a number") from None
    if column in BOOL_COLUMNS:
        if text.lower() not in BOOLEANS:
            raise ValueError(f"{where}: {column}={text!r}; it must be one of True, False (or true/false, "
                             "1/0)")
        return BOOLEANS[text.lower()]
    return text


def read_results(path: str | Path, grid_annealing: dict[str, bool] | None = None) -> list[dict]:
    """The rows of a results CSV (RESULT_COLUMNS; other columns kept as text), cells as numbers and
    booleans. A CSV written before the annealed and stage columns existed holds the runs of a grid
    stage: `grid_annealing` ({"+": True, "-": False}: by the family's decoder) says which of them were
    KL-annealed (study.grid_annealing gives a scale's); without it such a CSV is refused."""
    path = Path(path)
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        missing = [c for c in ("family", "beta", "rate", "distortion", "run_dir") if c not in columns]
        if missing:
            raise ValueError(f"{path} lacks the column(s) {', '.join(missing)}; is it a broken-elbo results "
                             "CSV?")
        rows = []
        for line, raw in enumerate(reader, start=2):
            where = f"{path}, line {line}"
            row = {k: _parse(k, v, where) for k, v in raw.items()}
            row["code"] = row.get("code") or paper_code(row["family"])
            row["stage"] = row.get("stage") or stage_of(row["run_dir"])
            if row.get("annealed") is None:
                if grid_annealing is None:
                    raise ValueError(f"{where}: the run has no annealed value; give the annealing of the "
                                     "grid that trained it (grid_annealing, e.g. "
                                     "study.grid_annealing('cpu'))")
                row["annealed"] = grid_annealing[row["code"][1]]
            rows.append(row)
    return rows


def combine(*tables: Sequence[dict]) -> list[dict]:
    """The rows of several tables, one per run folder (run_dir): a run in several is taken from the last."""
    by_run: dict[str, dict] = {}
    for rows in tables:
        for row in rows:
            by_run.pop(row["run_dir"], None)
            by_run[row["run_dir"]] = row
    return list(by_run.values())


# --- the assessment ---------------------------------------------------------------------------------

def assess(rows: Sequence[dict]) -> tuple[list[dict], dict]:
    """Regimes against H_hat (the best -ELBO of the rows), the frontier, the claims and the tables of
    finished runs (dicts with family, beta, annealed, rate, distortion, elbo, mutual_info, and where
    measured class_agreement / class_chance). Returns the rows with code, regime, class_kappa and
    on_frontier set (copies), and the summary: h_hat, the claims (with the runs each rests on and the
    tally of those the grid could test), the runs the model panels show, and the tables."""
    rows = [dict(r) for r in rows]
    if not rows:
        raise ValueError("no finished runs to analyse")
    for r in rows:
        r["code"] = paper_code(r["family"])
        r["stage"] = r.get("stage") or stage_of(r["run_dir"])
        if r.get("elbo") is None:
            r["elbo"] = -(r["rate"] + r["distortion"])
        if r.get("class_kappa") is None:
            r["class_kappa"] = claims.kappa(r.get("class_agreement"), r.get("class_chance"))
    h_hat = min(-r["elbo"] for r in rows)
    for r in rows:
        r["regime"] = regime(r["rate"], r["distortion"], r.get("mutual_info"), h_hat)
    claims.mark_frontier(rows)
    checked = claims.check_claims(rows, h_hat)
    low_rate = {}
    for decoder, name in (("-", "simple"), ("+", "autoregressive")):
        near_zero = [-r["elbo"] for r in rows if r["code"][1] == decoder and r["rate"] < claims.LOWEST_RATE]
        low_rate[name] = min(near_zero) if near_zero else None
    chosen = panel_runs(rows)
    summary = dict(
        h_hat=h_hat, paper_h_hat=PAPER_H_HAT,
        h_hat_run=next(r["run_dir"] for r in rows if -r["elbo"] == h_hat),
        best_low_rate_neg_elbo=low_rate,
        stages=sorted({r["stage"] for r in rows}),
        runs=[{k: r.get(k) for k in RESULT_COLUMNS} for r in sorted(rows, key=_order)],
        claims=checked, claims_tally=claims.tally(checked), claims_summary=claims.tally_text(checked),
        claims_table=claims_table(checked), claims_basis_table=claims.claims_basis_table(checked),
        panels={name: [_panel_entry(r) for r in runs] for name, runs in chosen.items()},
        near_frontier=len(panels.near_frontier(rows)),
        fig4_table=fig4_table(rows), runs_table=runs_table(rows),
        train_seconds=sum(r.get("train_seconds") or 0 for r in rows))
    return rows, summary


def panel_runs(rows: Sequence[dict]) -> dict[str, list[dict]]:
    """The runs each model panel shows (figures): fig4c (the four VampPrior families at beta = 1), fig5
    (every family at beta = 1), fig4d (frontier models of near-identical ELBO), fig6 (a walk along the
    frontier)."""
    return {"fig4c": panels.families_at_beta(rows, 1.0, panels.FIG4C_CODES),
            "fig5": panels.families_at_beta(rows, 1.0), "fig4d": panels.same_elbo(rows),
            "fig6": panels.frontier_walk(rows)}


def _order(row: dict) -> tuple:
    return (row["code"], row["beta"], not row.get("annealed"))


def _panel_entry(row: dict) -> dict:
    return {"run": claims.run_label(row), "run_dir": row["run_dir"], "rate": row["rate"],
            "distortion": row["distortion"], "neg_elbo": -row["elbo"], "regime": row["regime"]}


# --- tables ---------------------------------------------------------------------------------------

def _f(value, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _yes_no(value) -> str:
    return {True: "yes", False: "no"}.get(value, "n/a")


def _kept(row: dict) -> str:
    """Class agreement of reconstructions with their inputs, and Cohen's kappa."""
    if row.get("class_agreement") is None:
        return "n/a"
    kappa = claims.kappa(row["class_agreement"], row.get("class_chance"))
    return f"{row['class_agreement']:.0%}" + ("" if kappa is None else f" (κ {kappa:.2f})")


def fig4_table(rows: Sequence[dict]) -> str:
    """The -+v runs by beta (KL-annealed before unannealed at the same beta) beside the paper's four
    fig. 4 models (which were KL-annealed)."""
    measured = sorted((r for r in rows if paper_code(r["family"]) == FIG4_FAMILY),
                      key=lambda r: (r["beta"], not r.get("annealed")))
    betas = sorted({r["beta"] for r in measured} | set(PAPER_FIG4))
    lines = []
    for beta in betas:
        runs = [r for r in measured if math.isclose(r["beta"], beta)] or [None]
        paper = PAPER_FIG4.get(beta)
        paper_cells = [f"{paper[0]:g}", f"{paper[1]:g}", f"{paper[2]:g}", paper[3]] if paper else [""] * 4
        for r in runs:
            cells = ([_yes_no(r.get("annealed")), _f(r["rate"]), _f(r["distortion"]), _f(-r["elbo"]),
                      _f(r.get("mutual_info")), _kept(r), r["regime"]] if r else ["not run"] * 7)
            lines.append([f"{beta:g}", *cells, *paper_cells])
    return markdown_table(["beta", "annealed", "R", "D", "-ELBO", "I_q", "class kept", "regime", "paper R",
                           "paper D", "paper ELBO", "paper regime"], lines)


def runs_table(rows: Sequence[dict]) -> str:
    """Every run: KL annealing, R, D, -ELBO, I_q, active units, regime, class agreement, and how it
    stopped (epochs trained of the cap; converged: the plateau criterion was met; gain: the validation
    objective's improvement over the last k epochs when training stopped improving or hit the cap)."""
    lines = []
    for r in sorted(rows, key=lambda r: (paper_code(r["family"]), r["beta"], not r.get("annealed"))):
        converged = {True: "yes", False: "no (cap)", None: "n/a"}[r.get("converged")]
        lines.append([f"`{paper_code(r['family'])}`", f"{r['beta']:g}", _yes_no(r.get("annealed")),
                      r.get("stage") or stage_of(r["run_dir"]), _f(r["rate"]), _f(r["distortion"]),
                      _f(-r["elbo"]), _f(r.get("mutual_info")), r.get("active_units", "n/a"), _kept(r),
                      r["regime"], "yes" if r.get("on_frontier") else "",
                      f"{r.get('epochs_trained') or r.get('epochs')}/{r.get('epochs')}", converged,
                      _f(r.get("plateau_gain"))])
    return markdown_table(["family", "beta", "annealed", "stage", "R", "D", "-ELBO", "I_q", "active units",
                           "class kept", "regime", "frontier", "epochs", "converged", "last-k gain"], lines)


# --- figures from rows ---------------------------------------------------------------------------------

def rd_labels(rows: Sequence[dict]) -> list[str]:
    """A run's label on the RD plane: its beta, and "no anneal" where the same family has a
    KL-annealed run at that beta too."""
    labels = []
    for r in rows:
        twin = any(o is not r and o["family"] == r["family"] and math.isclose(o["beta"], r["beta"])
                   and o.get("annealed") != r.get("annealed") for o in rows)
        labels.append(f"β={r['beta']:g}" + (", no anneal" if twin and not r.get("annealed") else ""))
    return labels


def draw_rd_figures(rows: Sequence[dict], figures: str | Path, where: str = "") -> list[str]:
    """Figs. 3a (the RD plane with the H_hat line, the Pareto frontier and the convex hull) and 3b
    (-ELBO against R) of the rows, as figures/rd_plane and figures/elbo_rate (PNG and SVG)."""
    from rdvae.plots import save_figure
    from rdvae.plots.rd_plane import plot_elbo_rate, plot_rd_plane

    rows = list(rows)
    figures = Path(figures)
    labels = rd_labels(rows)
    where = f"{where} " if where else ""
    files = save_figure(plot_rd_plane(rows, f"Rate-distortion plane: {where}({len(rows)} runs)", labels),
                        figures / "rd_plane")
    files += save_figure(plot_elbo_rate(rows, f"$-$ELBO vs rate: {where}({len(rows)} runs)", labels),
                         figures / "elbo_rate")
    return [str(f) for f in files]


# --- a written analysis --------------------------------------------------------------------------------

def report(summary: dict) -> str:
    """The analysis as markdown: H_hat, the claims with the runs they rest on, the model panels'
    runs, fig. 4's table and every run."""
    def panel(name: str) -> str:
        return "; ".join(f"{e['run']}: R {e['rate']:.1f}, D {e['distortion']:.1f}, -ELBO {e['neg_elbo']:.2f}"
                         for e in summary["panels"][name]) or "none"

    best = min(summary["runs"], key=lambda r: -r["elbo"])
    return "\n".join([
        f"H_hat = {summary['h_hat']:.2f} nats ({claims.run_label(best)}; paper {summary['paper_h_hat']:g}), "
        f"{len(summary['runs'])} runs, stages: {', '.join(summary['stages'])}.", "",
        f"Claims: {summary['claims_summary']}.", "", summary["claims_basis_table"], "",
        f"Runs on or near the frontier (within 2% of H_hat): {summary['near_frontier']}.", "",
        f"- fig. 4c: {panel('fig4c')}", f"- fig. 4d: {panel('fig4d')}", f"- fig. 6: {panel('fig6')}", "",
        summary["fig4_table"], "", summary["runs_table"], ""])


def reanalyse(csv_paths: Sequence[str | Path], out: str | Path, scale: str = "cpu",
              figures: bool = True) -> dict:
    """The analysis of the runs in results CSVs (combined: a run in several is taken from the last),
    without any trained model: out/analysis.md (`report`), out/analysis.json (the summary),
    out/broken_elbo_results.csv (every run, regimes and frontier against the combined H_hat) and,
    with `figures`, out/figures/rd_plane and elbo_rate. A CSV without the annealed column holds runs
    of the `scale`'s grid stage (study.grid_annealing)."""
    from .study import grid_annealing

    if not csv_paths:
        raise ValueError("reanalyse needs at least one results CSV")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tables = [read_results(p, grid_annealing(scale)) for p in csv_paths]
    rows, summary = assess(combine(*tables))
    summary["sources"] = [str(p) for p in csv_paths]
    if figures:
        summary["figures"] = draw_rd_figures(rows, out / "figures", "binarized MNIST, test split")
    write_csv(out / "broken_elbo_results.csv", sorted(rows, key=_order), RESULT_COLUMNS)
    write_text(out / "analysis.md", report(summary))
    write_json(out / "analysis.json", json.loads(json.dumps(summary, default=str)))
    return summary
