"""Measuring trained models: rate, distortion, ELBO, importance-weighted likelihood,
mutual information with the aggregate posterior, ELBO surgery, active units."""

from .active_units import active_units, posterior_mean_variance
from .likelihood import iw_log_likelihood
from .mutual_information import (
    MutualInformation,
    aggregate_log_density,
    aggregate_log_density_per_dimension,
    mutual_information,
    posterior_samples,
)
from .rate_distortion import rate_distortion
from .report import evaluate_model, format_report
from .surgery import ELBOSurgery, Estimate, elbo_surgery, format_surgery

__all__ = [
    "ELBOSurgery",
    "Estimate",
    "MutualInformation",
    "active_units",
    "aggregate_log_density",
    "aggregate_log_density_per_dimension",
    "elbo_surgery",
    "evaluate_model",
    "format_report",
    "format_surgery",
    "iw_log_likelihood",
    "mutual_information",
    "posterior_mean_variance",
    "posterior_samples",
    "rate_distortion",
]
