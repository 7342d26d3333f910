"""Measuring trained models: rate, distortion, ELBO, importance-weighted likelihood,
mutual information with the aggregate posterior, active units."""

from .active_units import active_units, posterior_mean_variance
from .likelihood import iw_log_likelihood
from .mutual_information import (
    MutualInformation,
    aggregate_log_density,
    mutual_information,
    posterior_samples,
)
from .rate_distortion import rate_distortion
from .report import evaluate_model, format_report

__all__ = [
    "MutualInformation",
    "active_units",
    "aggregate_log_density",
    "evaluate_model",
    "format_report",
    "iw_log_likelihood",
    "mutual_information",
    "posterior_mean_variance",
    "posterior_samples",
    "rate_distortion",
]
