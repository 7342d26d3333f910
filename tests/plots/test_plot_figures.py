import numpy as np
import pytest
import torch

from rdvae.plots import (
    PlotError,
    convex_hull_frontier,
    family_style,
    pareto_frontier,
    plot_elbo_rate,
    plot_rd_plane,
    plot_sweep,
    reconstruction_grid,
    run_label,
    samples_grid,
    save_figure,
    select_runs,
)
from rdvae.presets import build_model
from rdvae.sweep import SweepSpec, product, run_sweep, sweep

ROWS = [
    {"family": "mlp", "beta": 0.1, "rate": 30.0, "distortion": 60.0, "elbo": -90.0},
    {"family": "mlp", "beta": 1.0, "rate": 10.0, "distortion": 78.0, "elbo": -88.0},
    {"family": "mlp", "beta": 10.0, "rate": 0.5, "distortion": 95.0, "elbo": -95.5},
    {"family": "mlp-v", "beta": 1.0, "rate": 12.0, "distortion": 74.0, "elbo": -86.0, "iw_nll": 84.0},
    {"family": "-+v", "beta": 1.0, "rate": 20.0, "distortion": 75.0, "elbo": -95.0},
    {"family": "+--", "beta": 1.0, "rate": 5.0, "distortion": 90.0, "elbo": -95.0},
    {"family": "somebody-elses", "beta": 1.0, "rate": 40.0, "distortion": 58.0, "elbo": -98.0},
]


def _line(ax, label_start):
    return next(line for line in ax.get_lines() if line.get_label().startswith(label_start))


def test_rd_plane_draws_the_bound_frontier_and_hull(tmp_path):
    fig = plot_rd_plane(ROWS, "binarized-mnist, test split", labels=[f"β={r['beta']:g}" for r in ROWS])
    ax = fig.axes[0]
    h_hat = 84.0  # the IW-NLL beats every -ELBO
    bound = _line(ax, "$D = \\hat H - R$")
    assert list(bound.get_xdata()) == [0, h_hat] and list(bound.get_ydata()) == [h_hat, 0]
    rate = np.array([r["rate"] for r in ROWS])
    distortion = np.array([r["distortion"] for r in ROWS])
    hull = _line(ax, "convex hull")
    idx = convex_hull_frontier(rate, distortion)
    assert list(hull.get_xdata()) == list(rate[idx]) and list(hull.get_ydata()) == list(distortion[idx])
    steps = _line(ax, "Pareto frontier")
    corners = set(zip(steps.get_xdata()[1::2], steps.get_ydata()[1::2], strict=False))
    assert {(rate[i], distortion[i]) for i in pareto_frontier(rate, distortion)} <= corners
    assert ax.get_xlabel() == "rate R (nats)" and ax.get_ylabel() == "distortion D (nats)"
    assert "test split" in ax.get_title()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"mlp", "mlp-v", "-+v", "somebody-elses"} <= set(legend)
    assert any(t.startswith("marginal:") for t in legend) and "encoder: complex" in legend
    paths = save_figure(fig, tmp_path / "rd_plane")
    assert [p.name for p in paths] == ["rd_plane.png", "rd_plane.svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "rate R (nats)" in paths[1].read_text()


def test_elbo_vs_rate_plots_r_plus_d(tmp_path):
    fig = plot_elbo_rate(ROWS, "binarized-mnist, test split")
    ax = fig.axes[0]
    offsets = np.concatenate([c.get_offsets() for c in ax.collections if hasattr(c, "get_offsets")
                              and len(c.get_offsets()) and c.get_offsets().shape[1] == 2])
    expected = {(r["rate"], r["rate"] + r["distortion"]) for r in ROWS}
    assert expected <= {tuple(p) for p in offsets.tolist()}
    assert _line(ax, "$\\hat H$").get_ydata()[0] == 84.0
    assert "ELBO" in ax.get_ylabel()


def test_family_styles_encode_components():
    assert family_style("--v").marker != family_style("---").marker        # marginal -> shape
    assert family_style("-+-").colour != family_style("---").colour        # decoder -> colour
    assert family_style("+--").filled is False and family_style("---").filled  # encoder -> fill
    assert family_style("simple-simple-vamp") == family_style("--v")


def test_grids_tile_inputs_and_models():
    torch.manual_seed(0)
    models = [(f"β={b}", build_model("mlp", (1, 8, 8), 2, hidden=[8]).eval()) for b in (0.5, 2)]
    x = (torch.rand(3, 1, 8, 8) > 0.5).float()
    fig = reconstruction_grid(models, x, "digits, test split", z_draws=2)
    assert len(fig.axes) == 3 and [a.get_title() for a in fig.axes] == ["data", "β=0.5", "β=2"]
    data = fig.axes[0].get_images()[0].get_array()
    # rows: input 0, input 0, input 1, input 1, ...; a wider gap between inputs than between draws
    assert np.array_equal(data[:8, :8], x[0, 0].numpy()) and np.array_equal(data[9:17, :8], x[0, 0].numpy())
    assert np.array_equal(data[19:27, :8], x[1, 0].numpy())
    block = fig.axes[1].get_images()[0].get_array()
    assert block.shape == data.shape[:1] + (8 + 2 + 8,) and ((block >= 0) & (block <= 1)).all()
    fig = samples_grid(models, "digits", n=4)
    assert [a.get_title() for a in fig.axes] == ["β=0.5", "β=2"]


def test_labels_and_run_selection():
    assert run_label({"family": "mlp-v", "beta": 0.3, "seed": 1}, ["family", "beta", "seed"]) == \
        "mlp-v β=0.3 seed=1"
    picked = select_runs(ROWS, 2)
    front = [ROWS[i] for i in pareto_frontier([r["rate"] for r in ROWS], [r["distortion"] for r in ROWS])]
    assert picked == [front[0], front[-1]]


def test_point_labels_name_only_fields_that_vary_within_a_family():
    from rdvae.plots.sweep_figures import _within_family

    # the same model options written in another key order (a config read back with sorted keys)
    rows = [{"family": "a", "beta": 0.1, "model": {"hidden": [8], "activation": "relu"}},
            {"family": "a", "beta": 1.0, "model": {"activation": "relu", "hidden": [8]}},
            {"family": "b", "beta": 1.0, "model": {"hidden": [4]}}]
    assert _within_family(rows, ["beta", "model"]) == ["beta"]
    rows[1]["model"] = {"activation": "relu", "hidden": [16]}
    assert _within_family(rows, ["beta", "model"]) == ["beta", "model"]


def test_plot_sweep_writes_every_figure(tmp_path):
    base = {"dataset": "digits", "binarize": "static", "latent_dim": 2, "model.hidden": [16],
            "model.pseudo_inputs": 10, "epochs": 1, "batch_size": 256}
    spec = SweepSpec(base=base, points=product(sweep("family", ["mlp"]), sweep("beta", [0.5, 2.0]))
                     + [{"family": "mlp-v", "beta": 1.0}, {"family": "nope", "beta": 1.0}])
    run_sweep(tmp_path, spec, workers=1, progress=False)
    result = plot_sweep(tmp_path, max_runs=3, examples=3, samples=4, formats=("png",))
    names = sorted(p.rsplit("/", 1)[1] for p in result["files"])
    assert names == sorted(f"{n}.png" for n in ("rd_plane", "elbo_rate", "reconstructions", "samples"))
    assert 1 <= len(result["runs"]) <= 3
    with pytest.raises(PlotError, match="no finished run named"):
        plot_sweep(tmp_path, runs=["no-such-run"])
    with pytest.raises(PlotError, match="no results.csv"):
        plot_sweep(tmp_path / "elsewhere")


def test_inputs_one_per_class_or_spread_through_the_split():
    from rdvae.plots.sweep_figures import pick_inputs

    x = torch.arange(10.0).reshape(10, 1)
    labels = torch.tensor([3, 3, 1, 1, 0, 2, 2, 0, 1, 3])
    assert pick_inputs(x, labels, 3).flatten().tolist() == [4.0, 2.0, 5.0]  # classes 0, 1, 2
    assert pick_inputs(x, None, 4).flatten().tolist() == [0.0, 3.0, 6.0, 9.0]  # sorted splits: spread out
