"""The visual vocabulary of rdvae's figures: how a family is drawn, fonts, and saving.

A run's marker says what its family is made of, as in fig. 3a of "Fixing a Broken ELBO":
shape = marginal, colour = decoder, fill = encoder (filled: simple or MLP, open: complex).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..presets import COMPONENT_NAMES, UnknownFamilyError, resolve_family

MARGINAL_MARKERS = {"-": "o", "v": "s", "+": "^", "mog": "D"}
DECODER_COLOURS = {"-": "#1f77b4", "+": "#d62728", "mlp": "#2ca02c"}
OPEN_ENCODERS = {"+", "mlp-iaf"}
FALLBACK_MARKERS = ("P", "X", "*", "h", "v", "<", ">")
FALLBACK_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")

RC = {
    "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8,
    "xtick.labelsize": 9, "ytick.labelsize": 9, "axes.spines.top": False,
    "axes.spines.right": False, "savefig.dpi": 200, "figure.dpi": 100, "svg.fonttype": "none",
}


@dataclass(frozen=True)
class FamilyStyle:
    encoder: str
    decoder: str
    marginal: str
    marker: str
    colour: str
    filled: bool

    def scatter_kwargs(self) -> dict:
        return {"marker": self.marker, "edgecolors": self.colour, "linewidths": 1.3,
                "facecolors": self.colour if self.filled else "white"}


def family_style(family: str) -> FamilyStyle:
    """How runs of `family` are drawn; families rdvae cannot resolve get a fallback style of
    their own (derived from the name, so it is stable across figures)."""
    try:
        preset = resolve_family(family)
        enc, dec, mar = preset.encoder, preset.decoder, preset.marginal
    except UnknownFamilyError:
        enc, dec, mar = "?", family, family
    code = sum(map(ord, family))
    marker = MARGINAL_MARKERS.get(mar, FALLBACK_MARKERS[code % len(FALLBACK_MARKERS)])
    colour = DECODER_COLOURS.get(dec, FALLBACK_COLOURS[code % len(FALLBACK_COLOURS)])
    return FamilyStyle(enc, dec, mar, marker, colour, enc not in OPEN_ENCODERS)


def component_name(key: str) -> str:
    return COMPONENT_NAMES.get(key, key)


def family_legend_handles(families: list[str]) -> list[Line2D]:
    """Legend entries: one per family, then what shape, colour and fill mean when the families
    differ in that component."""
    styles = {f: family_style(f) for f in families}
    handles = [Line2D([], [], linestyle="", marker=s.marker, markersize=7, markeredgewidth=1.3,
                      markeredgecolor=s.colour, markerfacecolor=s.colour if s.filled else "white",
                      label=f"{f}") for f, s in styles.items()]
    grey = "#555555"
    known = {f: s for f, s in styles.items() if s.encoder != "?"}  # resolvable families only
    if len({s.marginal for s in known.values()}) > 1:
        for mar in dict.fromkeys(s.marginal for s in known.values()):
            marker = next(s.marker for s in known.values() if s.marginal == mar)
            handles.append(Line2D([], [], linestyle="", marker=marker, markersize=6, color=grey,
                                  label=f"marginal: {component_name(mar)}"))
    if len({s.decoder for s in known.values()}) > 1:
        for dec in dict.fromkeys(s.decoder for s in known.values()):
            colour = next(s.colour for s in known.values() if s.decoder == dec)
            handles.append(Line2D([], [], color=colour, linewidth=3, label=f"decoder: {component_name(dec)}"))
    if len({s.filled for s in known.values()}) > 1:
        handles.append(Line2D([], [], linestyle="", marker="o", color=grey, label="encoder: simple"))
        handles.append(Line2D([], [], linestyle="", marker="o", markerfacecolor="white",
                              markeredgecolor=grey, label="encoder: complex"))
    return handles


def new_figure(width: float, height: float) -> Figure:
    """A figure outside pyplot (no GUI backend, nothing global to close), in rdvae's style."""
    with matplotlib.rc_context(RC):
        return Figure(figsize=(width, height), layout="constrained")


def save_figure(fig, path_stem: Path, formats=("png", "svg")) -> list[Path]:
    """Write `fig` atomically as path_stem.png, path_stem.svg, ...; return the paths."""
    from ..rundir import _atomic

    path_stem = Path(path_stem)
    paths = []
    for fmt in formats:
        path = path_stem.with_suffix("." + fmt)
        with matplotlib.rc_context(RC):
            _atomic(path, lambda tmp, fmt=fmt: fig.savefig(tmp, format=fmt, bbox_inches="tight"))
        paths.append(path)
    return paths


def styled():
    """Context in which rdvae's figures are built (rcParams are read when artists are made)."""
    return matplotlib.rc_context(RC)
