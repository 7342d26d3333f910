import itertools

import numpy as np
import pytest

from rdvae.plots.frontier import convex_hull_frontier, entropy_upper_bound, pareto_frontier, stepwise


def brute_pareto(pts):
    """Runs no other run beats in both R and D (weakly, strictly in one)."""
    keep = []
    for i, p in enumerate(pts):
        dominated = any((q <= p).all() and (q < p).any() for j, q in enumerate(pts) if j != i)
        if not dominated:
            keep.append(i)
    return sorted(keep, key=lambda i: pts[i, 0])


def brute_hull(pts):
    """p_i is a vertex of the lower-left hull iff no point of conv(others) is <= p_i in both
    coordinates; in 2-D it suffices to check single points and segments between two others."""
    keep = []
    for i, p in enumerate(pts):
        others = [q for j, q in enumerate(pts) if j != i]
        covered = any((q <= p).all() for q in others)
        for a, b in itertools.combinations(others, 2):
            # t in [0, 1] with t a + (1 - t) b <= p componentwise: intersect the t-intervals
            lo, hi = 0.0, 1.0
            for k in range(2):
                slope, const = a[k] - b[k], b[k] - p[k]  # need slope * t + const <= 0
                if slope > 0:
                    hi = min(hi, -const / slope)
                elif slope < 0:
                    lo = max(lo, -const / slope)
                elif const > 0:
                    hi = -1.0
            covered |= lo <= hi
        if not covered:
            keep.append(i)
    return sorted(keep, key=lambda i: pts[i, 0])


@pytest.mark.parametrize("seed", range(12))
def test_frontier_and_hull_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    if seed % 3 == 0:  # points near a convex curve, where most are on the frontier
        r = rng.uniform(0, 30, n)
        pts = np.column_stack([r, 80 * np.exp(-r / 10) + rng.exponential(2, n)])
    else:
        pts = rng.uniform(0, 100, (n, 2))
    front = pareto_frontier(pts[:, 0], pts[:, 1])
    hull = convex_hull_frontier(pts[:, 0], pts[:, 1])
    assert front == brute_pareto(pts)
    assert hull == brute_hull(pts)
    assert set(hull) <= set(front)


def test_ties_and_collinear_points():
    rate = [0, 1, 2, 2, 3]
    distortion = [4, 3, 2, 2, 5]  # (1, 3) is mid-edge of (0, 4)-(2, 2); (2, 2) appears twice
    assert pareto_frontier(rate, distortion) == [0, 1, 2]
    assert convex_hull_frontier(rate, distortion) == [0, 2]
    with pytest.raises(ValueError, match="finite"):
        pareto_frontier([0, float("nan")], [1, 2])


def test_stepwise_is_the_dominated_region_boundary():
    xs, ys = stepwise([1.0, 2.0, 5.0], [9.0, 4.0, 1.0], [0, 1, 2], r_max=10.0, d_max=12.0)
    assert xs.tolist() == [1, 1, 2, 2, 5, 5, 10]
    assert ys.tolist() == [12, 9, 9, 4, 4, 1, 1]


def test_entropy_upper_bound_uses_iw_nll_when_tighter():
    rows = [{"elbo": -90.0}, {"elbo": -85.0, "iw_nll": 83.5}, {"elbo": -84.0, "iw_nll": None}]
    assert entropy_upper_bound(rows) == 83.5
    assert entropy_upper_bound([{"elbo": -84.0, "iw_nll": 86.0}]) == 84.0
    with pytest.raises(ValueError, match="no run"):
        entropy_upper_bound([{"elbo": None}])
