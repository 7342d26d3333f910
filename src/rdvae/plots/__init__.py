"""Figures: the rate-distortion plane (fig. 3a), -ELBO vs rate (fig. 3b), and reconstruction
and sample grids (fig. 4) of "Fixing a Broken ELBO", from sweep rows and trained models.

    from rdvae.plots import plot_sweep
    plot_sweep("runs/sweep")   # -> runs/sweep/figures/{rd_plane,elbo_rate,reconstructions,samples}.png/.svg
"""

from .frontier import convex_hull_frontier, entropy_upper_bound, pareto_frontier, stepwise
from .grids import image_columns, reconstruction_grid, samples_grid
from .rd_plane import plot_elbo_rate, plot_rd_plane
from .style import family_style, save_figure
from .sweep_figures import PlotError, finished_rows, plot_sweep, run_label, select_runs

__all__ = ["PlotError", "convex_hull_frontier", "entropy_upper_bound", "family_style", "finished_rows",
           "image_columns", "pareto_frontier", "plot_elbo_rate", "plot_rd_plane", "plot_sweep",
           "reconstruction_grid", "run_label", "samples_grid", "save_figure", "select_runs", "stepwise"]
