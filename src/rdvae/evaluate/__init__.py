"""Measuring trained models: rate, distortion, ELBO, importance-weighted likelihood,
mutual information with the aggregate posterior, ELBO surgery, active units; each a registered measure
(MEASURES, register_measure), run on a model (run_measures, evaluate_model) or on a run or a sweep's runs
with the results stored where they belong (evaluate_run, evaluate_sweep); sharded over the processes of
torchrun with per-block streams, the same figures for any number of them (evaluate_sharded, run_sharded).
"""

from .active_units import active_units, posterior_mean_variance
from .likelihood import iw_log_likelihood
from .measures import MEASURES, Measure, register_measure, run_measures
from .mutual_information import (
    MutualInformation,
    aggregate_log_density,
    aggregate_log_density_per_dimension,
    mutual_information,
    posterior_samples,
)
from .rate_distortion import rate_distortion
from .report import evaluate_model, format_report
from .run import Evaluation, SweepEvaluation, evaluate_run, evaluate_sweep
from .sharded import evaluate_sharded, run_sharded
from .surgery import ELBOSurgery, Estimate, elbo_surgery, format_surgery

__all__ = [
    "MEASURES",
    "ELBOSurgery",
    "Estimate",
    "Evaluation",
    "Measure",
    "MutualInformation",
    "SweepEvaluation",
    "active_units",
    "aggregate_log_density",
    "aggregate_log_density_per_dimension",
    "elbo_surgery",
    "evaluate_model",
    "evaluate_run",
    "evaluate_sharded",
    "evaluate_sweep",
    "format_report",
    "format_surgery",
    "iw_log_likelihood",
    "mutual_information",
    "posterior_mean_variance",
    "posterior_samples",
    "rate_distortion",
    "register_measure",
    "run_measures",
    "run_sharded",
]
