"""rdvae's own measures, registered through the public `register_measure` in this order, which is the
order an evaluation runs them in (one random stream: rate-distortion, then mutual information and active
units, then the IW-NLL, then AIS, as rdvae has always drawn them) and the order of their keys in
results.csv:

    rate-distortion   R, D and the ELBO with their standard errors, and the bound I_q(x; z) <= R
    mutual-info       I_q(x; z) over the examples (the aggregate posterior summed over all of them)
    active-units      latent dimensions whose posterior mean varies with x
    iw-nll            the k-sample importance-weighted NLL, and the estimate H_hat - D
    ais               the AIS NLL, and its paired difference to the IW-NLL when both are measured
    bdmc              BDMC bounds on log p(x) of data simulated from the model, and their gap
    surgery           the ELBO surgery of the rate (index-code MI, marginal KL and its split)
    retrieval         precision@k of Hamming retrieval with binary codes (needs labels)
    fid               the Frechet distance between features of model samples and of the examples

Each is a thin function over the estimator of its module (likelihood, ais, mutual_information, ...).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from ..errors import EvaluationError
from ..model import bits_per_dim
from .active_units import THRESHOLD, active_units
from .ais import (
    JITTER,
    LEAPFROG,
    STEP_SIZE,
    TARGET_ACCEPTANCE,
    TUNE_FRACTION,
    ais_log_likelihood,
    bdmc,
)
from .batching import mean_and_stderr
from .likelihood import iw_log_likelihood
from .measures import register_measure, report_line
from .mutual_information import MutualInformation, mutual_information
from .rate_distortion import rate_distortion
from .retrieval import binary_codes, precision_at_k
from .surgery import ELBOSurgery, elbo_surgery, format_surgery, surgery_keys, surgery_units

NATS = "nats"


def _integer(name: str, value, low: int) -> int:
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


# -- rate and distortion -------------------------------------------------------------------------------
def _rate_distortion_lines(result: dict, dims: int | None) -> list[str]:
    lines = []
    for label, key in (("rate R (nats)", "rate"), ("distortion D (nats)", "distortion"),
                       ("ELBO (nats)", "elbo")):
        if result.get(key) is not None:
            bits = dims and key == "elbo"
            note = f"   ({bits_per_dim(abs(result[key]), dims):.4f} bits/dim)" if bits else ""
            lines.append(report_line(label, result[key], result.get(key + "_se"), note))
    if result.get("mi_upper") is not None:
        lines.append(report_line("I_q(x;z) <= R (a bound)", result["mi_upper"]))
    return lines


@register_measure("rate-distortion", keys={
    "rate": "rate R", "distortion": "distortion D", "elbo": "ELBO = -(R + D)",
    "rate_se": "standard error of R", "distortion_se": "standard error of D",
    "elbo_se": "standard error of the ELBO", "examples": "examples measured",
    "mi_upper": "I_q(x;z) <= R, a bound on the mutual information"},
    units={k: NATS for k in ("rate", "distortion", "elbo", "rate_se", "distortion_se", "elbo_se",
                             "mi_upper")},
    headline=("rate", "distortion", "elbo"), lines=_rate_distortion_lines)
def rate_distortion_measure(model, x, *, seed: int, batch_size: int = 1000, precision: str = "fp32") -> dict:
    """Rate R, distortion D and the ELBO, with their standard errors, and the bound I_q(x; z) <= R.

    Means over the examples, one z ~ e(z|x) each; ELBO = -(R + D). An example whose R or D is not finite
    is an EvaluationError (a diverged model)."""
    rate, distortion = rate_distortion(model, x, batch_size, precision=precision)
    return rate_distortion_figures(rate, distortion)


def rate_distortion_figures(rate: torch.Tensor, distortion: torch.Tensor) -> dict:
    """The keys of rate-distortion from the per-example rate and distortion [N] (an EvaluationError where
    one is not finite)."""
    neg_elbo = rate + distortion
    for name, values in (("rate", rate), ("distortion", distortion)):
        bad = int((~torch.isfinite(values)).sum())
        if bad:
            raise EvaluationError(f"the model's {name} is not finite on {bad} of {len(rate)} examples "
                                  "(a diverged model?)")
    mean_rate = rate.mean().item()
    # I_q(x; z) <= R is a bound. H - D <= I is one too, but needs the data entropy H, which is unknown: the
    # IW-NLL estimates it (iw-nll's h_hat_minus_d, an estimate and not a bound; with -ELBO it would be R)
    return {"rate": mean_rate, "distortion": distortion.mean().item(), "elbo": -neg_elbo.mean().item(),
            "rate_se": mean_and_stderr(rate)[1], "distortion_se": mean_and_stderr(distortion)[1],
            "elbo_se": mean_and_stderr(neg_elbo)[1], "examples": len(rate), "mi_upper": mean_rate}


# -- mutual information and active units ---------------------------------------------------------------
def _mutual_info_lines(result: dict, dims: int | None) -> list[str]:
    lines = [report_line("I_q(x;z) over N examples", result["mutual_info"], result.get("mutual_info_se"))]
    if result.get("mutual_info_limit") is not None:
        lines.append(report_line("  (at most log N)", result["mutual_info_limit"]))
    return lines


@register_measure("mutual-info", keys={
    "mutual_info": "I_q(x;z) over the examples", "mutual_info_se": "standard error of I_q(x;z)",
    "mutual_info_limit": "log N, the most I_q(x;z) can be"},
    units=NATS, headline=("mutual_info",), lines=_mutual_info_lines)
def mutual_info_measure(model, x, *, seed: int, batch_size: int = 1000) -> dict:
    """The mutual information I_q(x; z) over the examples, at most log N.

    Under the aggregate posterior q(z) = (1/N) sum_n e(z|x_n), summed over all N examples, one posterior
    sample each; above log N it is an EvaluationError (numerically broken posteriors)."""
    return mutual_info_figures(mutual_information(model, x, batch_size))


def mutual_info_figures(mi: MutualInformation) -> dict:
    """The keys of mutual-info from the estimate (an EvaluationError above log N)."""
    if not (mi.within_limit and math.isfinite(mi.value)):
        raise EvaluationError(f"I_q(x; z) = {mi.value:.6g} nats exceeds log N = {mi.log_n:.4f}, which no "
                              "aggregate-posterior estimate can: the posteriors are numerically broken (a "
                              "diverged model?)")
    return {"mutual_info": mi.value, "mutual_info_se": mi.stderr, "mutual_info_limit": mi.log_n}


def check_threshold(threshold) -> None:
    """ValueError for an active-units threshold that is not a number >= 0."""
    if not threshold >= 0:
        raise ValueError(f"threshold must be a number >= 0, got {threshold!r}")


@register_measure("active-units", keys={"active_units": "active units"})
def active_units_measure(model, x, *, seed: int, batch_size: int = 1000,
                         threshold: float = THRESHOLD) -> dict:
    """Active units (Burda et al. 2016): latent dimensions whose posterior mean varies with x.

    A dimension u is active when Var_x E[z_u | x] > threshold."""
    check_threshold(threshold)
    return {"active_units": active_units(model.encoder, x, threshold, batch_size=batch_size)}


# -- likelihoods ---------------------------------------------------------------------------------------
def _iw_lines(result: dict, dims: int | None) -> list[str]:
    note = f"   ({bits_per_dim(abs(result['iw_nll']), dims):.4f} bits/dim)" if dims else ""
    lines = [report_line(f"IW-NLL, k={result.get('iw_samples')} (nats)", result["iw_nll"],
                         result.get("iw_nll_se"), note)]
    if result.get("h_hat_minus_d") is not None:
        lines.append(f"  {'H_hat - D (an estimate)':<28}{result['h_hat_minus_d']:10.3f}   (H_hat = "
                     f"{result['h_hat_source']} = {result['h_hat']:.3f} estimates the data entropy H; "
                     "H - D <= I needs the true H)")
    return lines


@register_measure("iw-nll", keys={
    "iw_nll": "IW negative log-likelihood", "iw_nll_se": "standard error of the IW-NLL",
    "iw_samples": "importance samples k", "h_hat": "H_hat, the data entropy estimated by the IW-NLL",
    "h_hat_source": "what H_hat is", "h_hat_minus_d": "H_hat - D, an estimate of the bound H - D <= I"},
    units={k: NATS for k in ("iw_nll", "iw_nll_se", "h_hat", "h_hat_minus_d")},
    shares=("iw_log_px",), headline=("iw_nll",), lines=_iw_lines)
def iw_nll(model, x, *, seed: int, samples: int, rows: int | None = None, precision: str = "fp32",
           progress: bool = False, earlier: Mapping | None = None) -> dict:
    """The k-sample importance-weighted negative log-likelihood (Burda et al. 2016), k = samples.

    The mean over the examples with its standard error. It estimates the data entropy H (h_hat), and
    beside the distortion D of rate-distortion in the same evaluation gives H_hat - D, an estimate (not a
    bound) of the lower bound H - D <= I. Passes the per-example log p(x) on as iw_log_px. `rows`:
    (example, sample) pairs per decoder call (default: sized to the cache on a CPU)."""
    _integer("samples", samples, 1)
    log_px = iw_log_likelihood(model, x, samples, rows=rows, precision=precision, progress=progress)
    return iw_figures(log_px, samples, (earlier or {}).get("distortion"))


def iw_figures(log_px: torch.Tensor, samples: int, distortion: float | None = None) -> dict:
    """The keys of iw-nll (and its share iw_log_px) from the per-example log p(x) [N], with H_hat - D
    where the mean distortion D of the same evaluation is given."""
    nll = -log_px.mean().item()
    result = {"iw_nll": nll, "iw_nll_se": mean_and_stderr(log_px)[1], "iw_samples": samples,
              "h_hat": nll, "h_hat_source": f"IW-NLL (k={samples})", "iw_log_px": log_px}
    if distortion is not None:
        result["h_hat_minus_d"] = nll - distortion
    return result


def _ais_lines(result: dict, dims: int | None) -> list[str]:
    lines = []
    if result.get("ais_nll") is not None:
        lines.append(report_line(f"AIS NLL, {result['ais_steps']} steps (nats)", result["ais_nll"],
                                 result.get("ais_nll_se")))
        lines.append(f"  {'  (cost)':<28}{result['ais_chains']} chains x {result['ais_leapfrog']} leapfrog, "
                     f"{result['ais_gradient_evaluations']:.3g} decoder gradients, "
                     f"{result['ais_seconds']:.0f} s, acceptance {result['ais_acceptance']:.2f}")
    if result.get("ais_minus_iw") is not None:
        lines.append(report_line("AIS NLL - IW-NLL (paired)", result["ais_minus_iw"],
                                 result.get("ais_minus_iw_se")))
    return lines


@register_measure("ais", keys={
    "ais_nll": "AIS negative log-likelihood", "ais_nll_se": "standard error of the AIS NLL",
    "ais_steps": "annealing steps", "ais_chains": "AIS chains per example",
    "ais_leapfrog": "leapfrog steps per HMC move", "ais_acceptance": "mean Metropolis acceptance probability",
    "ais_gradient_evaluations": "decoder gradient evaluations, all chains and examples",
    "ais_seconds": "seconds of AIS",
    "ais_minus_iw": "AIS NLL - IW-NLL, paired over the same examples",
    "ais_minus_iw_se": "standard error of AIS NLL - IW-NLL"},
    units={"ais_nll": NATS, "ais_nll_se": NATS, "ais_seconds": "s", "ais_minus_iw": NATS,
           "ais_minus_iw_se": NATS},
    shares=("ais_log_px",), headline=("ais_nll",), lines=_ais_lines)
def ais_nll(model, x, *, seed: int, steps: int, chains: int = 16, leapfrog: int = LEAPFROG,
            step_size: float = STEP_SIZE, target_acceptance: float = TARGET_ACCEPTANCE,
            tune_fraction: float = TUNE_FRACTION, jitter: float = JITTER,
            examples_per_chunk: int | None = None, progress: bool = False,
            earlier: Mapping | None = None) -> dict:
    """The AIS negative log-likelihood (Wu et al. 2017), with its cost.

    `steps` annealing steps along a sigmoid schedule, `chains` chains per example, HMC moves of
    `leapfrog` steps with step sizes tuned in a pilot (rdvae.evaluate.ais; always fp32, seeded with the
    evaluation's seed). Beside the IW-NLL of the same evaluation, their paired difference over the same
    examples (ais_minus_iw). Passes the per-example log p(x) on as ais_log_px."""
    found = ais_log_likelihood(model, x, steps, chains, seed=seed, progress=progress, leapfrog=leapfrog,
                               step_size=step_size, target_acceptance=target_acceptance,
                               tune_fraction=tune_fraction, jitter=jitter,
                               examples_per_chunk=examples_per_chunk)
    log_px = found.pop("log_px")
    result = {**found, "ais_log_px": log_px}
    iw_log_px = (earlier or {}).get("iw_log_px")
    if iw_log_px is not None:
        result["ais_minus_iw"], result["ais_minus_iw_se"] = paired_difference(iw_log_px, log_px)
    return result


def paired_difference(iw_log_px: torch.Tensor, ais_log_px: torch.Tensor) -> tuple[float, float]:
    """AIS NLL - IW-NLL over the same examples: the mean of the per-example differences and its standard
    error."""
    difference = iw_log_px.double() - ais_log_px.double()     # AIS NLL - IW NLL per example
    return mean_and_stderr(difference)


BDMC_KEYS = {   # bdmc_KEY <- what rdvae.evaluate.ais.bdmc returns
    "lower": "lower_mean", "upper": "upper_mean", "gap": "gap", "gap_se": "gap_se", "steps": "steps",
    "chains": "chains", "examples": "examples", "gradient_evaluations": "gradient_evaluations",
    "seconds": "seconds"}


def _bdmc_lines(result: dict, dims: int | None) -> list[str]:
    return [f"  {'BDMC on simulated data':<28}{result['bdmc_lower']:10.3f} <= log p(x) <= "
            f"{result['bdmc_upper']:.3f}, gap {result['bdmc_gap']:.3f} ± {result['bdmc_gap_se']:.3f} "
            f"({result['bdmc_examples']} examples, {result['bdmc_steps']} steps)"]


@register_measure("bdmc", keys={
    "bdmc_lower": "BDMC lower bound on log p(x), simulated data",
    "bdmc_upper": "BDMC upper bound on log p(x), simulated data",
    "bdmc_gap": "BDMC gap, upper - lower bound", "bdmc_gap_se": "standard error of the BDMC gap",
    "bdmc_steps": "BDMC annealing steps", "bdmc_chains": "BDMC chains per example",
    "bdmc_examples": "examples simulated for BDMC",
    "bdmc_gradient_evaluations": "BDMC decoder gradient evaluations", "bdmc_seconds": "seconds of BDMC"},
    units={"bdmc_lower": NATS, "bdmc_upper": NATS, "bdmc_gap": NATS, "bdmc_gap_se": NATS,
           "bdmc_seconds": "s"},
    headline=("bdmc_gap",), lines=_bdmc_lines)
def bdmc_bounds(model, x, *, seed: int, steps: int, examples: int = 10, chains: int = 16,
                leapfrog: int = LEAPFROG, step_size: float = STEP_SIZE,
                target_acceptance: float = TARGET_ACCEPTANCE, tune_fraction: float = TUNE_FRACTION,
                jitter: float = JITTER, progress: bool = False) -> dict:
    """Bidirectional Monte Carlo bounds on log p(x) of data simulated from the model (Grosse et al. 2015).

    On `examples` data simulated from the model (x is not used), forward AIS bounds log p(x) from below
    and reverse AIS from the simulating z from above, with the settings of ais; their mean gap bounds the
    error of AIS on such data."""
    found = bdmc(model, steps, examples=_integer("examples", examples, 1), chains=chains, seed=seed,
                 progress=progress, leapfrog=leapfrog, step_size=step_size,
                 target_acceptance=target_acceptance, tune_fraction=tune_fraction, jitter=jitter)
    return {f"bdmc_{key}": found[source] for key, source in BDMC_KEYS.items()}


# -- the rate's decomposition --------------------------------------------------------------------------
def _surgery_lines(result: dict, dims: int | None) -> list[str]:
    table = format_surgery(ELBOSurgery.from_dict(result))
    return ["  ELBO surgery (nats):", *(f"  {line}" for line in table.splitlines())]


@register_measure("surgery", keys=surgery_keys(), units=surgery_units(),
                  headline=("surgery_avg_kl", "surgery_index_code_mi", "surgery_marginal_kl"),
                  lines=_surgery_lines)
def surgery(model, x, *, seed: int, points: int | None = None, samples_per_example: int = 1,
            split_points: int = 5000, batch_size: int = 1000) -> dict:
    """The ELBO surgery of the rate (Hoffman & Johnson 2016; Chen et al. 2018).

    average KL = index-code MI + marginal KL, marginal KL = total correlation + dimension-wise KL
    (+ marginal dependence), q(z) summed over all the examples (rdvae.evaluate.surgery). `points`:
    examples drawn for the outer expectation (None: all); `split_points`: draws used for the TC /
    dimension-wise split, which costs N x d each (0: skip it)."""
    if points is not None:
        _integer("points", points, 1)
    _integer("samples_per_example", samples_per_example, 1)
    _integer("split_points", split_points, 0)
    found = elbo_surgery(model, x, points=points, samples_per_example=samples_per_example,
                         dimension_points=split_points or None, dimensions=split_points != 0,
                         batch_size=batch_size, seed=seed)
    return found.as_dict()


# -- what the codes and the samples are good for ---------------------------------------------------------
@register_measure("retrieval", keys={
    "retrieval_precision": "precision@k of Hamming retrieval", "retrieval_k": "k, the nearest codes counted",
    "retrieval_database": "training examples searched"},
    needs=("labels", "dataset"), headline=("retrieval_precision",))
def retrieval(model, x, *, seed: int, labels, dataset, k: int = 100, threshold: float = 0.5,
              batch_size: int = 1000) -> dict:
    """Retrieval precision@k with binary codes (semantic hashing), the training split as the database.

    Each example is a query whose code is the bits 1[E[z|x] > threshold] of its posterior mean (0.5:
    Bernoulli latents; 0: the signs of Gaussian ones), searched among the codes of the training split;
    precision@k is the fraction of its k Hamming-nearest training examples that share its label, averaged
    over the queries (ties ordered at random with the evaluation's seed)."""
    database, database_labels = dataset.train, dataset.labels.get("train")
    if not isinstance(database, torch.Tensor):
        raise ValueError(f"retrieval searches the training split, which {dataset.name} streams from disk; it "
                         "needs it in memory")
    if database_labels is None:
        raise ValueError(f"retrieval needs the labels of the training split; {dataset.name} has none")
    queries = binary_codes(model.encoder, x, threshold, batch_size)
    codes = binary_codes(model.encoder, database, threshold, batch_size)
    precision = precision_at_k(queries, labels.cpu(), codes, database_labels.cpu(), k=_integer("k", k, 1),
                               seed=seed)
    return {"retrieval_precision": precision, "retrieval_k": k, "retrieval_database": len(database)}


@register_measure("fid", keys={
    "fid": "Frechet distance of features, model samples vs the examples",
    "fid_samples": "model samples drawn",
    "fid_features": "the feature network"},
    needs=("config",), headline=("fid",))
def fid(model, x, *, seed: int, config, samples: int = 0, features: str = "classifier", images: str = "auto",
        classifier_epochs: int = 2, batch_size: int = 1000, progress: bool = False) -> dict:
    """The Frechet distance (FID, Heusel et al. 2017) between features of model samples and of the examples.

    `samples` images of the model (default: as many as the examples): z ~ m(z), then the decoder's mean,
    or a draw from it (`images`: auto, draws for discrete data; mean; sample). `features`: "classifier",
    the small classifier rdvae trains once on the run's dataset (labelled images;
    rdvae.fid.feature_classifier, cached), or the path of a TorchScript feature network
    (rdvae.fid.inception)."""
    from ..fid import TorchScriptFeatures, feature_classifier, frechet_distance_of_images
    from ..fid.score import model_images

    if x.dim() != 4:
        raise ValueError(f"fid compares images [N, C, H, W]; these examples are {tuple(x.shape[1:])}")
    n = _integer("samples", samples, 0) or len(x)
    if n < 2 or len(x) < 2:
        raise ValueError(f"fid needs at least 2 samples and 2 examples, got {n} and {len(x)}")
    if features == "classifier":
        epochs = _integer("classifier_epochs", classifier_epochs, 1)
        net, meta = feature_classifier(config.dataset, epochs=epochs, progress=progress,
                                       data_options=config.data)
        described = (f"rdvae classifier {meta['architecture']} of {meta['dataset']} (test accuracy "
                     f"{meta['test_accuracy']:.3f})")
    else:
        net, described = TorchScriptFeatures(features), f"TorchScript {features}"
    generated = model_images(model, n, images, batch_size)
    distance = frechet_distance_of_images(net, generated, x.cpu(), batch_size)
    return {"fid": distance, "fid_samples": n, "fid_features": described}
