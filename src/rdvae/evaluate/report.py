"""One call that measures a trained model on a split, with the keys of DESIGN.md."""

from __future__ import annotations

import math

from torch import Tensor

from ..device import seeded
from ..model import bits_per_dim
from ..protocols import LatentVariableModel, conditioned
from .active_units import active_units
from .batching import mean_and_stderr, model_device
from .likelihood import iw_log_likelihood
from .mutual_information import mutual_information
from .rate_distortion import rate_distortion


def _stderr(values: Tensor) -> float:
    return mean_and_stderr(values)[1]


def evaluate_model(model: LatentVariableModel, x: Tensor, iw_samples: int = 0, batch_size: int = 1000,
                   seed: int = 0, precision: str = "fp32", progress: bool = False,
                   diagnostics: bool = True, beta: float | None = None) -> dict:
    """Rate, distortion, ELBO (means over x, nats) with standard errors; with `diagnostics`,
    active units and I_q(x; z); with iw_samples = k > 0, the k-sample IW negative
    log-likelihood. The bounds H - D <= I <= R are reported with the best upper bound on H
    available here (min of -ELBO and IW-NLL) standing in for H. `beta` evaluates a beta-conditioned
    model conditioned on that beta (and records it)."""
    model.eval()
    with seeded(seed, model_device(model)), conditioned(model, beta):
        rate, distortion = rate_distortion(model, x, batch_size, precision=precision)
        neg_elbo = rate + distortion
        result = {
            "rate": rate.mean().item(),
            "distortion": distortion.mean().item(),
            "elbo": -neg_elbo.mean().item(),
            "rate_se": _stderr(rate),
            "distortion_se": _stderr(distortion),
            "elbo_se": _stderr(neg_elbo),
            "examples": len(x),
        }
        if diagnostics:
            mi = mutual_information(model, x, batch_size)
            result.update(
                mutual_info=mi.value, mutual_info_se=mi.stderr, mutual_info_limit=mi.log_n,
                active_units=active_units(model.encoder, x, batch_size=batch_size),
            )
        entropy_upper = -result["elbo"]
        if iw_samples > 0:
            log_px = iw_log_likelihood(model, x, iw_samples, precision=precision, progress=progress)
            result.update(iw_nll=-log_px.mean().item(), iw_nll_se=_stderr(log_px),
                          iw_samples=iw_samples)
            entropy_upper = min(entropy_upper, result["iw_nll"])
        result.update(
            entropy_upper=entropy_upper,
            mi_lower=entropy_upper - result["distortion"],
            mi_upper=result["rate"],
        )
    if beta is not None:
        result["beta"] = beta
    return result


def format_report(result: dict, dims: int | None = None) -> str:
    """A short human-readable table of an evaluation result (bits/dim as a display)."""
    lines = []

    def row(label, key, se_key=None):
        if key not in result or result[key] is None:
            return
        value = f"{result[key]:10d}" if isinstance(result[key], int) else f"{result[key]:10.3f}"
        if se_key and result.get(se_key) is not None and math.isfinite(result[se_key]):
            value += f" ± {result[se_key]:.3f}"
        if dims and key in ("elbo", "iw_nll"):
            value += f"   ({bits_per_dim(abs(result[key]), dims):.4f} bits/dim)"
        lines.append(f"  {label:<28}{value}")

    row("rate R (nats)", "rate", "rate_se")
    row("distortion D (nats)", "distortion", "distortion_se")
    row("ELBO (nats)", "elbo", "elbo_se")
    if "iw_nll" in result:
        row(f"IW-NLL, k={result['iw_samples']} (nats)", "iw_nll", "iw_nll_se")
    row("I_q(x;z) over N examples", "mutual_info", "mutual_info_se")
    if "mutual_info_limit" in result:
        lines.append(f"  {'  (at most log N)':<28}{result['mutual_info_limit']:10.3f}")
    row("active units", "active_units")
    if "mi_lower" in result:
        lines.append(
            f"  {'H - D <= I(X;Z) <= R':<28}{result['mi_lower']:10.3f} <= I <= {result['mi_upper']:.3f}"
            f"   (H <= {result['entropy_upper']:.3f} stands in for H)"
        )
    return "\n".join(lines)
