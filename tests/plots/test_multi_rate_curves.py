import pytest

from rdvae.plots.multi_rate import area_between, compare_curves, per_beta_gaps, plot_multi_rate_overlay


def rows(points, betas=None):
    betas = betas or [None] * len(points)
    return [{"rate": r, "distortion": d, "beta": b} for (r, d), b in zip(points, betas, strict=True)]


def test_area_between_parallel_lines_is_height_times_span():
    a = rows([(0, 10), (10, 0)])
    b = rows([(0, 12), (5, 7), (10, 2)])
    result = area_between(a, b)
    assert result["area"] == pytest.approx(20.0)
    assert result["mean_gap"] == pytest.approx(2.0) and result["max_gap"] == pytest.approx(2.0)


def test_area_between_crossing_lines_counts_both_triangles():
    # |(10 - R) - R| = |10 - 2R| on [0, 10]: two triangles of area 25
    result = area_between(rows([(0, 0), (10, 10)]), rows([(0, 10), (10, 0)]))
    assert result["area"] == pytest.approx(50.0, rel=1e-4)


def test_area_only_over_the_rates_both_curves_span():
    result = area_between(rows([(0, 10), (4, 6), (10, 0)]), rows([(2, 9), (6, 5)]))
    assert (result["rate_low"], result["rate_high"]) == (2, 6)
    assert result["area"] == pytest.approx(4 * 1.0)   # b lies 1 above a on [2, 6]


def test_per_beta_gaps():
    sweep = rows([(20, 80), (10, 90), (2, 100)], betas=[0.1, 1.0, 10.0])
    mr = rows([(20, 81), (10, 89), (3, 100)], betas=[0.1, 1.0, 10.0])
    gaps = {g["beta"]: g for g in per_beta_gaps(mr, sweep)}
    assert gaps[0.1]["objective_gap"] == pytest.approx(1.0)
    assert gaps[1.0]["neg_elbo_gap"] == pytest.approx(-1.0)
    assert gaps[10.0]["objective_gap"] == pytest.approx(10.0)         # one nat more rate at beta 10
    assert gaps[10.0]["distortion_gap_at_equal_rate"] == pytest.approx(100 - (100 - 10 / 8))
    comparison = compare_curves(mr, sweep, beta_range=(0.5, 10))
    assert [g["beta"] for g in comparison["per_beta"]] == [1.0, 10.0]
    assert comparison["max_abs_objective_gap"] == pytest.approx(10.0)
    fig = plot_multi_rate_overlay(mr, sweep, "test")
    assert len(fig.axes) == 2
