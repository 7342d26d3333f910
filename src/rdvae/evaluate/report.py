"""evaluate_model: the measurements of a trained model that rdvae has always made (the trainer's, the
summary's), composed of registered measures; format_report: any measures' keys as a short table."""

from __future__ import annotations

from torch import Tensor

from ..protocols import LatentVariableModel, conditioned
from .measures import MEASURES, run_measures


def model_measures(iw_samples: int = 0, diagnostics: bool = True, ais_steps: int = 0, ais_chains: int = 16,
                   ais_options: dict | None = None) -> dict:
    """The measures (name -> options) of evaluate_model's arguments."""
    measures: dict = {"rate-distortion": {}}
    if diagnostics:
        measures.update({"mutual-info": {}, "active-units": {}})
    if iw_samples > 0:
        measures["iw-nll"] = {"samples": iw_samples}
    if ais_steps > 0:
        measures["ais"] = {"steps": ais_steps, "chains": ais_chains, **(ais_options or {})}
    return measures


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
    with its standard error.

    The registered measures rate-distortion, mutual-info, active-units, iw-nll and ais
    (rdvae.evaluate.measures), run in that order on one random stream seeded with `seed`."""
    measures = model_measures(iw_samples, diagnostics, ais_steps, ais_chains, ais_options)
    with conditioned(model, beta):
        result = run_measures(model, x, measures, seed=seed, batch_size=batch_size, precision=precision,
                              progress=progress)
    if beta is not None:
        result["beta"] = beta
    return result


def format_report(result: dict, dims: int | None = None) -> str:
    """A short human-readable table of an evaluation result (or a run's summary): the lines of every
    registered measure whose keys it holds, in registry order (bits/dim as a display, with `dims` the
    data dimensions)."""
    lines = []
    for _, measure in MEASURES.items():
        if any(result.get(key) is not None for key in measure.keys):
            lines += measure.lines(result, dims)
    return "\n".join(lines)
