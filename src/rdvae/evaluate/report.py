"""One call that measures a trained model on a split, with the keys of DESIGN.md."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..device import seeded
from ..errors import EvaluationError
from ..model import bits_per_dim
from ..protocols import LatentVariableModel, conditioned
from .active_units import active_units
from .ais import ais_log_likelihood
from .batching import mean_and_stderr, model_device
from .likelihood import iw_log_likelihood
from .mutual_information import mutual_information
from .rate_distortion import rate_distortion


def _stderr(values: Tensor) -> float:
    return mean_and_stderr(values)[1]


def evaluate_model(model: LatentVariableModel, x: Tensor, iw_samples: int = 0, batch_size: int = 1000,
                   seed: int = 0, precision: str = "fp32", progress: bool = False,
                   diagnostics: bool = True, beta: float | None = None, ais_steps: int = 0,
                   ais_chains: int = 16, ais_options: dict | None = None) -> dict:
    """Rate, distortion, ELBO (means over x, nats) with standard errors; with `diagnostics`,
    active units and I_q(x; z); with iw_samples = k > 0, the k-sample IW negative
    log-likelihood. Reported beside them: the bound I_q <= R (mi_upper) and, with the IW-NLL, H_hat - D,
    the lower bound H - D <= I with the data entropy H replaced by the IW-NLL (h_hat), an estimate and
    not a bound (h_hat_minus_d). `beta` evaluates a beta-conditioned
    model conditioned on that beta (and records it). With ais_steps > 0, the AIS negative
    log-likelihood (evaluate.ais, `ais_chains` chains, `ais_options` for `anneal`; always fp32) with its
    cost, and beside the IW-NLL their paired difference ais_minus_iw (mean over the same examples)
    with its standard error."""
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise EvaluationError(f"the data to evaluate holds {bad} non-finite values (NaN or infinity)")
    model.eval()
    with seeded(seed, model_device(model)), conditioned(model, beta):
        rate, distortion = rate_distortion(model, x, batch_size, precision=precision)
        neg_elbo = rate + distortion
        for name, values in (("rate", rate), ("distortion", distortion)):
            bad = int((~torch.isfinite(values)).sum())
            if bad:
                raise EvaluationError(f"the model's {name} is not finite on {bad} of {len(x)} examples "
                                      "(a diverged model?)")
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
            if not (mi.within_limit and math.isfinite(mi.value)):
                raise EvaluationError(f"I_q(x; z) = {mi.value:.6g} nats exceeds log N = {mi.log_n:.4f}, "
                                      "which "
                                      "no aggregate-posterior estimate can: the posteriors are numerically "
                                      "broken (a diverged model?)")
            result.update(
                mutual_info=mi.value, mutual_info_se=mi.stderr, mutual_info_limit=mi.log_n,
                active_units=active_units(model.encoder, x, batch_size=batch_size),
            )
        # I_q(x; z) <= R is a bound. H - D <= I is one too, but needs the data entropy H, which is
        # unknown: the IW-NLL estimates it (from above, in expectation), so H_hat - D is an estimate
        # of that lower bound, not a bound, and is named so. (With -ELBO as H_hat it would be R.)
        result["mi_upper"] = result["rate"]
        if iw_samples > 0:
            log_px = iw_log_likelihood(model, x, iw_samples, precision=precision, progress=progress)
            result.update(iw_nll=-log_px.mean().item(), iw_nll_se=_stderr(log_px),
                          iw_samples=iw_samples)
            result.update(h_hat=result["iw_nll"], h_hat_source=f"IW-NLL (k={iw_samples})",
                          h_hat_minus_d=result["iw_nll"] - result["distortion"])
        if ais_steps > 0:
            ais = ais_log_likelihood(model, x, ais_steps, ais_chains, seed=seed, progress=progress,
                                     **(ais_options or {}))
            result.update({k: v for k, v in ais.items() if k != "log_px"})
            if iw_samples > 0:
                difference = log_px.double() - ais["log_px"].double()     # AIS NLL - IW NLL per example
                result["ais_minus_iw"], result["ais_minus_iw_se"] = mean_and_stderr(difference)
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
    if "ais_nll" in result:
        row(f"AIS NLL, {result['ais_steps']} steps (nats)", "ais_nll", "ais_nll_se")
        lines.append(f"  {'  (cost)':<28}{result['ais_chains']} chains x {result['ais_leapfrog']} leapfrog, "
                     f"{result['ais_gradient_evaluations']:.3g} decoder gradients, "
                     f"{result['ais_seconds']:.0f} s, acceptance {result['ais_acceptance']:.2f}")
    if "ais_minus_iw" in result:
        row("AIS NLL - IW-NLL (paired)", "ais_minus_iw", "ais_minus_iw_se")
    if "bdmc_gap" in result:
        lines.append(f"  {'BDMC on simulated data':<28}{result['bdmc_lower']:10.3f} <= log p(x) <= "
                     f"{result['bdmc_upper']:.3f}, gap {result['bdmc_gap']:.3f} ± "
                     f"{result['bdmc_gap_se']:.3f} ({result['bdmc_examples']} examples, "
                     f"{result['bdmc_steps']} steps)")
    row("I_q(x;z) over N examples", "mutual_info", "mutual_info_se")
    if "mutual_info_limit" in result:
        lines.append(f"  {'  (at most log N)':<28}{result['mutual_info_limit']:10.3f}")
    row("active units", "active_units")
    if "mi_upper" in result:
        lines.append(f"  {'I_q(x;z) <= R (a bound)':<28}{result['mi_upper']:10.3f}")
    if "h_hat_minus_d" in result:
        lines.append(f"  {'H_hat - D (an estimate)':<28}{result['h_hat_minus_d']:10.3f}   (H_hat = "
                     f"{result['h_hat_source']} = {result['h_hat']:.3f} estimates the data entropy H; "
                     "H - D <= I needs the true H)")
    return "\n".join(lines)
