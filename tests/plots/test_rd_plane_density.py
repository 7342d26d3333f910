"""The RD plane of negative log-densities (Gaussian decoders): no D >= 0 triangle, axes fitted to
the points and curves rather than the square from 0."""

from matplotlib.patches import Polygon

from rdvae.plots import plot_rd_plane


def test_negative_distortions_get_axes_that_show_them():
    rows = [{"rate": 8.0, "distortion": 37_000.0, "elbo": -37_008.0, "family": "dcgan", "beta": 1.0},
            {"rate": 295.0, "distortion": -1_900.0, "elbo": 1_605.0, "family": "dcgan", "beta": 1.0}]
    curve = {"rate": [140.0, 460.0], "distortion": [-2_200.0, -2_640.0], "family": "dcgan", "label": "AIS"}
    ax = plot_rd_plane(rows, "densities", curves=[curve]).axes[0]
    low, high = ax.get_ylim()
    assert low < -2_640 and high > 37_000
    assert ax.get_xlim()[1] > 460 and ax.get_xlim()[1] < 1_000      # not the square up to D's 37 000
    assert not [p for p in ax.patches if isinstance(p, Polygon)]     # no infeasible triangle
    positive = [{**r, "distortion": abs(r["distortion"]), "elbo": -(r["rate"] + abs(r["distortion"]))}
                for r in rows]
    square = plot_rd_plane(positive, "probabilities").axes[0]
    assert square.get_xlim() == square.get_ylim() and square.get_xlim()[0] == 0
