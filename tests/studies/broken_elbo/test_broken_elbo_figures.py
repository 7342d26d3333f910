"""The model panels of "Fixing a Broken ELBO": which runs figs. 4c, 4d and 6 show (on hand-made
sweep rows), and the drawing of a panel from trained runs."""

import math

import pytest

from rdvae.plots.frontier import pareto_frontier
from rdvae.studies.broken_elbo.figures import (
    FIG4C_CODES,
    _near_frontier,
    draw_model_panel,
    families_at_beta,
    frontier_walk,
    near_frontier,
    panel_label,
    same_elbo,
)
from rdvae.train import TrainConfig, train


def row(family, beta, rate, distortion, regime="semantic encoder", **extra):
    return {"run_dir": f"runs/family={family},beta={beta}", "family": family, "beta": beta, "rate": rate,
            "distortion": distortion, "elbo": -(rate + distortion), "regime": regime, **extra}


def neg_elbo(r):
    return -r["elbo"]


def codes(rows):
    return [r["family"][-3:] for r in rows]


# a sweep at beta 1 (one family twice, one at a beta read back from CSV) and at other betas
SWEEP = [
    row("mlp-+v", 1.0, 6.2, 74.1),
    row("mlp--v", 1.0, 25.0, 60.0),
    row("mlp--v", 1.0, 28.0, 61.0),  # the same family again (e.g. KL annealing): worse -ELBO
    row("mlp+-v", 1.0000000001, 30.0, 56.0),
    row("mlp++v", 1.0, 0.3, 80.6, regime="autodecoder"),
    row("mlp---", 1.0, 20.0, 66.0),
    row("mlp-+v", 0.1, 156.0, 4.8, regime="autoencoder"),
    row("mlp--v", 2.0, 12.0, 75.0),
    {**row("mlp-+-", 1.0, math.nan, 70.0)},  # a diverged run: not placed
]


def test_families_at_beta_one_run_per_code_ordered_by_rate():
    chosen = families_at_beta(SWEEP)
    assert codes(chosen) == ["+-v", "--v", "---", "-+v", "++v"]  # rate descending
    assert [r["rate"] for r in chosen] == sorted((r["rate"] for r in chosen), reverse=True)
    assert all(math.isclose(r["beta"], 1.0) for r in chosen)
    assert next(r for r in chosen if r["family"] == "mlp--v")["rate"] == 25.0  # the better of the two
    assert codes(families_at_beta(SWEEP, codes=FIG4C_CODES)) == ["+-v", "--v", "-+v", "++v"]
    assert codes(families_at_beta(SWEEP, beta=0.1)) == ["-+v"]
    assert families_at_beta(SWEEP, beta=0.5) == []
    # paper codes as family names, and the default codes span both decoders
    assert codes(families_at_beta([row("-+v", 1.0, 3.0, 77.0), row("--v", 1.0, 9.0, 72.0)])) == ["--v", "-+v"]
    assert len(FIG4C_CODES) == 4 and {c[1] for c in FIG4C_CODES} == {"-", "+"}


# a frontier from autoencoder to autodecoder, four of its runs at -ELBO 80-81.5, and dominated runs
FRONT = [
    row("-+v", 0.1, 156.0, 4.8),      # -ELBO 160.8
    row("-+v", 0.15, 120.3, 8.1),     # 128.4
    row("--v", 0.5, 60.0, 21.0),      # 81.0   band
    row("+-v", 0.75, 40.0, 40.5),     # 80.5   band
    row("-+v", 1.0, 6.2, 74.1),       # 80.3   band
    row("++v", 1.1, 0.5, 80.0),       # 80.5   band
    row("---", 1.0, 30.0, 58.0),      # 88.0   on the frontier, outside the band
    row("+--", 1.0, 45.0, 60.0),      # 105    dominated by (40, 40.5)
    row("-+-", 1.0, 7.0, 80.0),       # 87     dominated by (6.2, 74.1)
]


def test_same_elbo_same_band_different_rates():
    chosen = same_elbo(FRONT, count=4, tolerance=1.0)
    assert len(chosen) == 4
    elbos = [neg_elbo(r) for r in chosen]
    assert max(elbos) - min(elbos) <= 1.0
    rates = [r["rate"] for r in chosen]
    assert rates == sorted(rates, reverse=True) and len(set(rates)) == 4
    assert rates[0] == 60.0 and rates[-1] == 0.5  # the widest spread the band allows
    # fewer wanted: the two ends of the band, then one in between
    assert [r["rate"] for r in same_elbo(FRONT, count=2, tolerance=1.0)] == [60.0, 0.5]
    assert [r["rate"] for r in same_elbo(FRONT, count=3, tolerance=1.0)] == [60.0, 40.0, 0.5]
    # default band: 2% of the best -ELBO (80.3 -> 1.6 nats), the same four runs
    assert sorted(r["rate"] for r in same_elbo(FRONT)) == [0.5, 6.2, 40.0, 60.0]
    # a narrow band: the widest pair within 0.25 nats (80.3 and 80.5: rates 6.2 and 40 or 0.5)
    narrow = same_elbo(FRONT, tolerance=0.25)
    assert len(narrow) >= 2 and max(map(neg_elbo, narrow)) - min(map(neg_elbo, narrow)) <= 0.25
    assert narrow[0]["rate"] - narrow[-1]["rate"] == pytest.approx(40.0 - 0.5)


def test_same_elbo_with_no_pair_in_any_band_returns_the_best_run():
    sparse = [row("-+v", 0.1, 150.0, 5.0), row("-+v", 1.0, 6.0, 75.0), row("-+v", 1.1, 0.1, 100.0)]
    assert same_elbo(sparse, tolerance=1.0) == [sparse[1]]
    assert same_elbo([], tolerance=1.0) == []
    with pytest.raises(ValueError):
        same_elbo(FRONT, tolerance=-1.0)


def test_same_elbo_counts_runs_near_the_frontier():
    # (7, 74.5) is 0.4 nats above the frontier run (6.2, 74.1): near it, inside the band
    rows = [row("-+v", 1.0, 6.2, 74.1), row("--v", 0.5, 60.0, 21.0), row("-+-", 1.0, 7.0, 74.5)]
    assert sorted(r["rate"] for r in same_elbo(rows, tolerance=1.5)) == [6.2, 7.0, 60.0]
    assert sorted(r["rate"] for r in same_elbo(rows, tolerance=0.3)) == [6.2]  # 80.3 vs 81.0: too far apart


# a frontier A (0.5, 80), B (6, 74), C (60, 21), and dominated runs whose distance to its staircase
# differs with the frontier run it is measured from
STAIRCASE = [row("++v", 1.1, 0.5, 80.0), row("-+v", 1.0, 6.0, 74.0), row("--v", 0.5, 60.0, 21.0)]
ABOVE_B = row("-+-", 1.0, 7.0, 74.5)     # 0.5 above B, the best frontier run of no higher rate
RIGHT_OF_C = row("+--", 1.0, 61.0, 40.0)  # 1 right of C, the best frontier run of no higher distortion
FAR = row("---", 1.0, 30.0, 78.0)        # 4 above B and 24 right of B; only 78 - 80 = -2 "above" A


def test_near_frontier_measures_from_the_best_frontier_run_not_the_worst():
    """The distance to the staircase is to the lowest-distortion frontier run of no higher rate (and the
    lowest-rate one of no higher distortion). Measured from the highest-distortion one instead (A, the
    autodecoder), every run of D <= 80 would count as near, as all 34 of the cpu grid did."""
    runs = [*STAIRCASE, ABOVE_B, RIGHT_OF_C, FAR]
    near = _near_frontier(runs, tolerance=1.5)
    assert [r["family"] for r in near] == ["++v", "-+v", "--v", "-+-", "+--"]
    assert FAR not in near
    assert FAR in _near_frontier(runs, tolerance=4.0)          # 4 above B: near at 4 nats
    assert ABOVE_B not in _near_frontier(runs, tolerance=0.4)  # 0.5 above B
    assert RIGHT_OF_C not in _near_frontier(runs, tolerance=0.9)


# the 34 runs of the converged cpu grid: family, beta, R, D (docs/results/broken-elbo-results.csv)
CPU_GRID = [
    ("+++", 0.1, 109.44, 31.20),
    ("+++", 1, 3.24, 82.41),
    ("++-", 0.1, 149.72, 26.15),
    ("++-", 1, 4.37, 81.45),
    ("++v", 0.1, 114.97, 36.16),
    ("++v", 1, 4.25, 80.27),
    ("+-+", 0.5, 30.35, 64.20),
    ("+-+", 1, 19.20, 77.08),
    ("+-+", 2, 12.41, 92.67),
    ("+--", 0.5, 32.87, 65.27),
    ("+--", 1, 21.24, 76.02),
    ("+--", 2, 12.99, 92.71),
    ("+-v", 0.5, 30.73, 65.19),
    ("+-v", 1, 20.34, 75.07),
    ("+-v", 2, 13.48, 87.32),
    ("-++", 0.1, 102.51, 32.69),
    ("-++", 1, 4.09, 81.09),
    ("-+-", 0.1, 157.54, 26.27),
    ("-+-", 1, 3.02, 82.85),
    ("-+v", 0.1, 127.18, 31.14),
    ("-+v", 0.15, 91.57, 38.04),
    ("-+v", 0.5, 18.39, 68.37),
    ("-+v", 1, 4.19, 80.45),
    ("-+v", 1.1, 3.74, 81.16),
    ("-+v", 2, 0.01, 84.89),
    ("--+", 0.5, 29.40, 65.51),
    ("--+", 1, 19.58, 76.46),
    ("--+", 2, 13.01, 89.98),
    ("---", 0.5, 33.02, 65.83),
    ("---", 1, 21.53, 76.22),
    ("---", 2, 13.75, 90.29),
    ("--v", 0.5, 31.33, 65.05),
    ("--v", 1, 21.07, 73.84),
    ("--v", 2, 13.95, 85.59),
]

def test_near_frontier_on_the_cpu_grid_keeps_23_runs_and_fig4d_stays_in_its_band():
    """The audit of the 34-run grid: 23 runs lie within 2% of H_hat (1.69 nats) of the frontier; `--v` at
    beta 2 is 5.3 nats above it, so fig. 4d cannot show it."""
    rows = [row("mlp" + code, beta, rate, distortion) for code, beta, rate, distortion in CPU_GRID]
    near = near_frontier(rows)
    assert len(near) == 23
    assert not any(r["family"] == "mlp--v" and r["beta"] == 2 for r in near)
    chosen = same_elbo(rows)
    assert all(r in near for r in chosen) and len(chosen) == 4
    assert max(map(neg_elbo, chosen)) - min(map(neg_elbo, chosen)) <= 0.02 * min(map(neg_elbo, rows))


def test_frontier_walk_frontier_only_spread_and_sorted():
    # 21 frontier runs at rates 0, 5, ..., 100 (D = 100 - R) and dominated runs above them
    front = [row("-+v", 0.1 * i, 5.0 * i, 100.0 - 5.0 * i + 0.5) for i in range(21)]
    dominated = [row("---", 1.0, 5.0 * i + 1.0, 110.0 - 5.0 * i) for i in range(20)]
    rows = dominated[:10] + front + dominated[10:]
    walk = frontier_walk(rows, count=5)
    frontier_ids = {id(rows[i]) for i in pareto_frontier([r["rate"] for r in rows],
                                                         [r["distortion"] for r in rows])}
    assert all(id(r) in frontier_ids for r in walk)
    assert [r["rate"] for r in walk] == [100.0, 75.0, 50.0, 25.0, 0.0]  # both ends, evenly spread
    assert len(frontier_walk(rows)) == 8
    eight = [r["rate"] for r in frontier_walk(rows)]
    assert eight == sorted(eight, reverse=True) and eight[0] == 100.0 and eight[-1] == 0.0
    assert max(-b + a for a, b in zip(eight, eight[1:], strict=False)) <= 20.0  # no big gaps
    short = frontier_walk(front[:3], count=8)  # fewer frontier runs than asked for: all of them
    assert [r["rate"] for r in short] == [10.0, 5.0, 0.0]
    assert frontier_walk([]) == []


def test_panel_label():
    assert panel_label(row("mlp-+v", 1.0, 6.23, 74.08, regime="semantic encoder")) == \
        "-+v β=1\nR=6.2 D=74.1\nsemantic encoder"
    assert panel_label(row("mlp-+v", 1.0, 6.23, 74.08, annealed=True)).startswith("-+v β=1 annealed\n")


def test_draw_model_panel_writes_the_reconstruction_and_sample_grids(tmp_path):
    sweep_dir = tmp_path / "sweep"
    rows = []
    for name, seed in (("a", 0), ("b", 1)):
        config = TrainConfig(dataset="digits", family="mlp", latent_dim=2, model={"hidden": [8]}, epochs=1,
                             binarize="static", seed=seed)
        summary = train(config, sweep_dir / "runs" / name, progress=False)
        rows.append({**summary, "run_dir": f"runs/{name}", "family": "mlp-+v", "beta": 1.0,
                     "regime": "semantic encoder"})
    files = draw_model_panel(sweep_dir, rows, tmp_path / "figures" / "fig4c", "Families at β = 1", inputs=3,
                             z_draws=2, decoder_draws=2)
    names = sorted(f.rsplit("/", 1)[1] for f in files)
    assert names == ["fig4c_reconstructions.png", "fig4c_reconstructions.svg", "fig4c_samples.png",
                     "fig4c_samples.svg"]
    for f in files:
        if f.endswith(".png"):
            with open(f, "rb") as fh:
                assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    svg = (tmp_path / "figures" / "fig4c_reconstructions.svg").read_text()
    assert "-+v β=1" in svg and "semantic encoder" in svg and "average" in svg
    assert draw_model_panel(sweep_dir, [], tmp_path / "figures" / "none", "nothing") == []
