"""ELBO surgery per run as stacked bars: index-code MI I_q(n; z) (bottom) and marginal KL
KL(q(z) || m(z)) (top), whose sum is the average KL (the rate), with log N marked.

Rows are dicts holding `index_code_mi` and `marginal_kl` (or the `surgery_`-prefixed keys that
`rdvae eval --surgery` writes into summary.json), optionally their `_se`, `mi_limit` (log N),
`label` (else `run_dir`'s name, else `family`), `group` (bars of one group stand together and
the group is named under them) and `published: True` (drawn hatched, for a paper's numbers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib.patches import Patch

from .style import new_figure, save_figure, styled

MI_COLOUR, MARGINAL_COLOUR = "#4c72b0", "#dd8452"


def _value(row: dict, key: str):
    for name in (key, "surgery_" + key):
        if row.get(name) is not None:
            return float(row[name])
    return None


def _label(row: dict) -> str:
    if row.get("label"):
        return str(row["label"])
    if row.get("run_dir"):
        return Path(str(row["run_dir"])).name
    return str(row.get("family", "?"))


def plot_surgery(rows: Sequence[dict], out_path, title: str = "ELBO surgery: rate = MI + marginal KL",
                 formats=("png", "svg")) -> list[Path]:
    """Draw the stacked bars of `rows` and save them as out_path.{png,svg}; return the paths."""
    rows = [r for r in rows
            if _value(r, "index_code_mi") is not None and _value(r, "marginal_kl") is not None]
    if not rows:
        raise ValueError("no rows with index_code_mi and marginal_kl (run `rdvae eval RUN --surgery`)")
    positions, group_spans, x, previous = [], {}, 0.0, object()
    for row in rows:
        group = row.get("group")
        if positions and group != previous:
            x += 0.6
        positions.append(x)
        group_spans.setdefault(group, []).append(x)
        previous, x = group, x + 1.0

    with styled():
        fig = new_figure(max(5.0, 0.6 * x + 3.2), 3.6)
        ax = fig.add_subplot()
        for pos, row in zip(positions, rows, strict=True):
            mi, mkl = _value(row, "index_code_mi"), _value(row, "marginal_kl")
            hatch = "///" if row.get("published") else None
            alpha = 0.55 if row.get("published") else 1.0
            ax.bar(pos, mi, 0.8, color=MI_COLOUR, alpha=alpha, hatch=hatch, edgecolor="white", linewidth=0.5)
            ax.bar(pos, mkl, 0.8, bottom=mi, color=MARGINAL_COLOUR, alpha=alpha, hatch=hatch,
                   edgecolor="white", linewidth=0.5)
            se = [_value(row, "index_code_mi_se"), _value(row, "marginal_kl_se")]
            if all(s is not None and math.isfinite(s) for s in se) and not row.get("published"):
                ax.errorbar(pos, mi + mkl, yerr=math.hypot(*se), color="#333333", capsize=2, linewidth=0.8)
            limit = _value(row, "mi_limit")
            if limit is not None:
                ax.hlines(limit, pos - 0.45, pos + 0.45, colors="#222222", linestyles="--", linewidth=1.0)
            ax.text(pos, mi + mkl, f"{mi + mkl:.1f}", ha="center", va="bottom", fontsize=7, color="#333333")
        labels = [_label(r) for r in rows]
        rotate = max(len(line) for label in labels for line in label.split("\n")) * len(rows) > 90
        lines = max(label.count("\n") + 1 for label in labels)
        ax.set_xticks(positions, labels, rotation=30 if rotate else 0, ha="right" if rotate else "center",
                      fontsize=8)
        if any(g is not None for g in group_spans):
            for group, xs in group_spans.items():
                if group is not None:
                    ax.annotate(str(group), ((min(xs) + max(xs)) / 2, 0), xycoords=("data", "axes fraction"),
                                xytext=(0, -44 if rotate else -10 - 11 * lines), textcoords="offset points",
                                ha="center", va="top", fontsize=9, fontweight="bold")
        ax.set_ylabel("nats")
        ax.set_title(title)
        handles = [Patch(color=MI_COLOUR, label="index-code MI $I_q(n;z)$"),
                   Patch(color=MARGINAL_COLOUR, label="marginal KL $KL(q(z)\\,\\|\\,m(z))$")]
        if any(_value(r, "mi_limit") is not None for r in rows):
            from matplotlib.lines import Line2D
            handles.append(Line2D([], [], color="#222222", linestyle="--", label="log N"))
        if any(r.get("published") for r in rows):
            handles.append(Patch(facecolor="white", edgecolor="#777777", hatch="///", label="published"))
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        top = max(max(_value(r, "index_code_mi") + _value(r, "marginal_kl"), _value(r, "mi_limit") or 0)
                  for r in rows)
        ax.set_ylim(0, top * 1.1)
    return save_figure(fig, Path(out_path).with_suffix(""), formats)
