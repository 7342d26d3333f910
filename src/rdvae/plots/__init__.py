"""Figures: the rate-distortion plane (fig. 3a), -ELBO vs rate (fig. 3b), and reconstruction
and sample grids (fig. 4) of "Fixing a Broken ELBO", from sweep rows and trained models.

    from rdvae.plots import plot_sweep
    plot_sweep("runs/sweep")   # -> runs/sweep/figures/{rd_plane,elbo_rate,reconstructions,samples}.png/.svg
"""

from __future__ import annotations

import importlib

# name -> module it lives in (imported on first use: importing a submodule, such as the epoch figures
# the trackers draw, does not load matplotlib)
_EXPORTS = {
    "convex_hull_frontier": "frontier", "entropy_upper_bound": "frontier", "pareto_frontier": "frontier",
    "stepwise": "frontier", "image_columns": "grids", "reconstruction_grid": "grids",
    "samples_grid": "grids", "plot_elbo_rate": "rd_plane", "plot_rd_plane": "rd_plane",
    "family_style": "style", "save_figure": "style", "PlotError": "sweep_figures",
    "finished_rows": "sweep_figures", "plot_sweep": "sweep_figures", "run_label": "sweep_figures",
    "select_runs": "sweep_figures",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
