"""Where the best runs of a sweep lie on the rate-distortion plane.

Both R and D are to be minimised. The stepwise Pareto frontier is the set of runs no other run
beats in both; the convex hull is the lower-left boundary of the convex hull of all runs
(vertices only), i.e. the runs some positive trade-off weight w_R R + w_D D makes optimal.
H_hat, the best upper bound on the data entropy H a sweep offers, sets the line D = H_hat - R.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _points(rate: Sequence[float], distortion: Sequence[float]) -> np.ndarray:
    pts = np.column_stack([np.asarray(rate, dtype=float), np.asarray(distortion, dtype=float)])
    if pts.ndim != 2 or pts.shape[1] != 2 or not np.isfinite(pts).all():
        raise ValueError("rate and distortion must be finite sequences of the same length")
    return pts


def pareto_frontier(rate: Sequence[float], distortion: Sequence[float]) -> list[int]:
    """Indices of the runs on the Pareto frontier (no other run has R <= and D <= with one
    strict), sorted by increasing rate (so by decreasing distortion). Of identical points
    the first is kept."""
    pts = _points(rate, distortion)
    order = sorted(range(len(pts)), key=lambda i: (pts[i, 0], pts[i, 1], i))
    frontier, best = [], math.inf
    for i in order:
        if pts[i, 1] < best:
            frontier.append(i)
            best = pts[i, 1]
    return frontier


def _cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))


def convex_hull_frontier(rate: Sequence[float], distortion: Sequence[float]) -> list[int]:
    """Indices of the vertices of the lower-left convex hull, sorted by increasing rate: the
    extreme points of conv(runs) + [0, inf)^2. Points in the middle of a hull edge are not
    vertices."""
    pts = _points(rate, distortion)
    chain: list[int] = []
    for i in pareto_frontier(rate, distortion):  # increasing R, decreasing D
        # pop while the last two and the new point do not turn counter-clockwise (lower hull)
        while len(chain) >= 2 and _cross(pts[chain[-2]], pts[chain[-1]], pts[i]) <= 0:
            chain.pop()
        chain.append(i)
    return chain


def entropy_upper_bound(rows: Sequence[dict]) -> float:
    """H_hat: the smallest upper bound on H among the runs, min over runs of -ELBO and, where
    computed, the IW and AIS negative log-likelihoods (nats)."""
    bounds = []
    for row in rows:
        elbo = row.get("elbo")
        for value in (None if elbo is None else -elbo, row.get("iw_nll"), row.get("ais_nll")):
            if value is not None and math.isfinite(value):
                bounds.append(value)
    if not bounds:
        raise ValueError("no run has an ELBO or IW-NLL to bound the entropy H")
    return min(bounds)


def stepwise(rate: Sequence[float], distortion: Sequence[float], frontier: Sequence[int],
             r_max: float, d_max: float) -> tuple[np.ndarray, np.ndarray]:
    """The staircase bounding the region the frontier's runs dominate, as a polyline from
    (R_0, d_max) down and right to (r_max, D_last)."""
    xs, ys = [], []
    d_prev = d_max
    for i in frontier:
        xs += [rate[i], rate[i]]
        ys += [d_prev, distortion[i]]
        d_prev = distortion[i]
    xs.append(r_max)
    ys.append(d_prev)
    return np.asarray(xs), np.asarray(ys)
