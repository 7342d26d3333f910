"""What every gradient estimator returns."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class Estimate:
    """An estimate of E_{z ~ e(z|x)}[f(z)] per example.

    `value` [B] is the average of f over the drawn z (an unbiased estimate of the expectation,
    carrying f's own gradient, e.g. the decoder's), plus a zero-valued surrogate whose gradient
    with respect to the encoder's parameters is the estimator's estimate of grad E[f] (the
    "magic box" construction: s - s.detach()). `z` [S, B, d] holds the states f was evaluated at.
    """

    value: Tensor
    z: Tensor
