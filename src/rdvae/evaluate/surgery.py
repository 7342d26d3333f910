"""ELBO surgery (Hoffman & Johnson 2016) and the further split of Chen et al. (2018), measured
over a whole split:

    average KL  = avg_n KL(e(z|x_n) || m(z))     (the rate; analytic where torch has it)
                = I_q(n; z) + KL(q(z) || m(z))                     index-code MI + marginal KL
    KL(q(z) || m(z)) = TC + dimension-wise KL + marginal dependence

    I_q(n; z)           = E[log e(z|x_n) - log q(z)]     <= log N
    KL(q(z) || m(z))    = E[log q(z) - log m(z)]
    TC                  = E[log q(z) - sum_j log q(z_j)]         = KL(q(z) || prod_j q(z_j))
    dimension-wise KL   = E[sum_j log q(z_j) - log m_j(z_j)]     = sum_j KL(q(z_j) || m_j(z_j))
    marginal dependence = E[sum_j log m_j(z_j) - log m(z)]       (0 when m factorizes)

The expectations are over q(z): n uniform on the N examples, z ~ e(z|x_n). q(z), and q(z_j) for
the split, are summed over ALL N examples in chunks (`aggregate_log_density`), never over a
minibatch; the Monte Carlo is only in the outer expectation, whose standard errors are reported.
The per-point terms telescope, so on the same draws MI + marginal KL equals the Monte Carlo
average KL exactly and TC + dimension-wise KL + marginal dependence equals the marginal KL
exactly; the analytic average KL agrees within Monte Carlo error.

For a marginal that does not factorize (mixture, VampPrior) the dimension-wise KL is taken
against the marginal's own one-dimensional marginals m_j (1-D mixtures, closed form) and the
remainder E[log prod_j m_j(z_j) - log m(z)] is reported as the marginal dependence; it is not
a KL and may have either sign. The split needs a factorized encoder (every Gaussian encoder).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.distributions import Distribution

from ..components.distributions import diagonal_normal, is_diagonal_normal
from ..device import seeded
from ..model import analytic_kl
from ..objectives.total_correlation import FactorizationError, per_dimension_log_prob
from ..protocols import LatentVariableModel
from .batching import chunks, mean_and_stderr, model_device
from .mutual_information import (
    aggregate_log_density,
    aggregate_log_density_per_dimension,
    posterior_samples,
)

TERMS = {   # the terms of the decomposition (nats): a name, and what it is
    "avg_kl": ("average KL", "KL(e(z|x_n) || m(z)) averaged over n, the rate"),
    "index_code_mi": ("index-code MI", "I_q(n; z)"),
    "marginal_kl": ("marginal KL", "KL(q(z) || m(z))"),
    "total_correlation": ("total correlation", "KL(q(z) || prod_j q(z_j))"),
    "dimension_kl": ("dimension-wise KL", "sum_j KL(q(z_j) || m_j(z_j))"),
    "marginal_dependence": ("marginal dependence", "E[log prod_j m_j(z_j) - log m(z)]"),
}
FIGURES = {   # the other figures of ELBOSurgery.as_dict
    "mi_limit": "log N, the most I_q(n; z) can be",
    "mi_within_limit": "whether I_q(n; z) <= log N holds",
    "identity_residual": "average KL - (index-code MI + marginal KL), 0 up to Monte Carlo error",
    "examples": "examples q(z) is summed over",
    "points": "draws of z in the outer expectation",
    "dimension_points": "draws used for the total correlation / dimension-wise split",
    "avg_kl_method": "how the average KL was computed (analytic or monte carlo)",
    "dimension_note": "why the split is missing, where it is",
}
NATS = ("mi_limit", "identity_residual")


def surgery_keys(prefix: str = "surgery_") -> dict[str, str]:
    """The keys of ELBOSurgery.as_dict(prefix), each with a short description."""
    keys = {}
    for name, (label, what) in TERMS.items():
        keys[prefix + name] = f"{label} {what}"
        keys[prefix + name + "_se"] = f"standard error of the {label}"
    keys.update({prefix + name: description for name, description in FIGURES.items()})
    return keys


def surgery_units(prefix: str = "surgery_") -> dict[str, str]:
    """The units of the keys of ELBOSurgery.as_dict(prefix) that have them (nats)."""
    named = [*TERMS, *(name + "_se" for name in TERMS), *NATS]
    return {prefix + name: "nats" for name in named}


@dataclass
class Estimate:
    value: float   # nats
    stderr: float  # Monte Carlo standard error of the mean

    @classmethod
    def of(cls, terms: Tensor) -> Estimate:
        return cls(*mean_and_stderr(terms))


@dataclass
class ELBOSurgery:
    avg_kl: Estimate
    index_code_mi: Estimate
    marginal_kl: Estimate
    total_correlation: Estimate | None
    dimension_kl: Estimate | None
    marginal_dependence: Estimate | None
    examples: int                 # N, the examples q(z) is summed over
    points: int                   # draws of z in the outer expectation
    dimension_points: int         # draws used for the TC / dimension-wise split
    avg_kl_method: str            # "analytic" or "monte carlo"
    dimension_note: str = ""      # why the split is missing, when it is

    @property
    def log_n(self) -> float:
        return math.log(self.examples)

    @property
    def mi_within_limit(self) -> bool:
        """I_q(n; z) <= log N: every per-point term is <= log N when q(z) includes the point's
        own example, so a violation means q(z) was not summed over the whole split."""
        return self.index_code_mi.value <= self.log_n + 1e-4

    @property
    def identity_residual(self) -> float:
        """average KL - (MI + marginal KL): 0 up to Monte Carlo error."""
        return self.avg_kl.value - self.index_code_mi.value - self.marginal_kl.value

    @classmethod
    def from_dict(cls, values: dict, prefix: str = "surgery_") -> ELBOSurgery:
        """The decomposition that as_dict(prefix) wrote (e.g. read back from summary.json)."""
        def estimate(name: str) -> Estimate | None:
            value, stderr = values.get(prefix + name), values.get(prefix + name + "_se")
            return None if value is None else Estimate(value, math.nan if stderr is None else stderr)

        return cls(**{name: estimate(name) for name in TERMS}, examples=values[prefix + "examples"],
                   points=values[prefix + "points"], dimension_points=values[prefix + "dimension_points"],
                   avg_kl_method=values[prefix + "avg_kl_method"],
                   dimension_note=values.get(prefix + "dimension_note") or "")

    def as_dict(self, prefix: str = "surgery_") -> dict:
        out = {}
        for name in TERMS:
            est = getattr(self, name)
            out[prefix + name] = None if est is None else est.value
            out[prefix + name + "_se"] = None if est is None else est.stderr
        out.update({
            prefix + "mi_limit": self.log_n, prefix + "mi_within_limit": self.mi_within_limit,
            prefix + "identity_residual": self.identity_residual,
            prefix + "examples": self.examples, prefix + "points": self.points,
            prefix + "dimension_points": self.dimension_points,
            prefix + "avg_kl_method": self.avg_kl_method,
        })
        if self.dimension_note:
            out[prefix + "dimension_note"] = self.dimension_note
        return out


@torch.inference_mode()
def _log_prob(dist: Distribution, z: Tensor, batch_size: int) -> Tensor:
    return torch.cat([dist.log_prob(zc).float() for zc in z.split(max(1, batch_size))])


def rate_terms(encoder, marginal: Distribution, x: Tensor, z: Tensor, log_posterior: Tensor,
               batch_size: int = 1000) -> dict[str, Tensor]:
    """Per-point terms [M] for draws z [M, d] with log e(z_m | x_{n_m}) = log_posterior [M]:
    index-code MI, marginal KL, their sum (the Monte Carlo KL), and log q(z), log m(z)."""
    log_q = aggregate_log_density(encoder, x, z, batch_size)
    log_m = _log_prob(marginal, z, batch_size)
    return {"index_code_mi": log_posterior - log_q, "marginal_kl": log_q - log_m,
            "monte_carlo_kl": log_posterior - log_m, "log_q": log_q, "log_m": log_m}


def marginal_kl_terms(encoder, marginal: Distribution, x: Tensor, z: Tensor, log_q: Tensor,
                      log_m: Tensor, batch_size: int = 1000) -> dict[str, Tensor]:
    """Per-point terms [M] of the split of the marginal KL: TC, dimension-wise KL, marginal
    dependence (they sum to log q(z) - log m(z))."""
    log_q_dims = aggregate_log_density_per_dimension(encoder, x, z, batch_size).sum(-1)
    log_m_dims = per_dimension_log_prob(marginal, z).float().sum(-1)
    return {"total_correlation": log_q - log_q_dims, "dimension_kl": log_q_dims - log_m_dims,
            "marginal_dependence": log_m_dims - log_m}


class _PosteriorTable:
    """e(z|x_n) of a diagonal-Gaussian encoder, tabulated once as rows [loc, scale] ([N, 2, d]),
    so that the chunked sums over all N do not re-run the encoder network."""

    def __call__(self, rows: Tensor) -> Distribution:
        return diagonal_normal(rows[:, 0], rows[:, 1])


@torch.inference_mode()
def _tabulate(encoder, x: Tensor, batch_size: int) -> tuple:
    """(encoder', x') that give the same e(z|x_n) row by row, cheaper when tabulable."""
    device, rows = model_device(encoder), []
    for xb in chunks(x, batch_size, device):
        q = encoder(xb)
        if not is_diagonal_normal(q):
            return encoder, x
        rows.append(torch.stack([q.base_dist.loc, q.base_dist.scale], dim=1))
    return _PosteriorTable(), torch.cat(rows)


@torch.inference_mode()
def _average_analytic_kl(encoder, marginal: Distribution, x: Tensor, batch_size: int) -> Tensor | None:
    kls = []
    for xb in chunks(x, batch_size, model_device(encoder)):
        kl = analytic_kl(encoder(xb), marginal)
        if kl is None:
            return None
        kls.append(kl.float())
    return torch.cat(kls)


@torch.inference_mode()
def elbo_surgery(model: LatentVariableModel, x: Tensor, points: int | None = None,
                 samples_per_example: int = 1,
                 dimension_points: int | None = None, dimensions: bool = True,
                 batch_size: int = 1000, seed: int = 0) -> ELBOSurgery:
    """The decomposition of the rate over the N examples of x.

    The outer expectation uses `samples_per_example` draws z ~ e(z|x_n) for each of `points`
    examples drawn uniformly without replacement (None: all N); q(z) always sums over all N.
    The TC / dimension-wise split costs N x d per point, so it can use the first
    `dimension_points` of those draws (None: all of them).
    """
    model.eval()
    encoder, n = model.encoder, len(x)
    if n < 1:
        raise ValueError("elbo_surgery needs at least one example")
    device = model_device(model)
    with seeded(seed, device):
        marginal = model.marginal_distribution()
        if points is None or points >= n:
            index = torch.arange(n)
        else:
            index = torch.randperm(n)[:points]
        chosen = x[index]
        z, log_posterior = posterior_samples(
            encoder, chosen.repeat_interleave(samples_per_example, dim=0), batch_size)
        table_encoder, table = _tabulate(encoder, x, batch_size)
        terms = rate_terms(table_encoder, marginal, table, z, log_posterior.float(), batch_size)
        analytic = _average_analytic_kl(encoder, marginal, chosen, batch_size)

        split, note = {}, ""
        m_split = len(z) if dimension_points is None else min(len(z), dimension_points)
        if dimensions:
            sub = torch.randperm(len(z))[:m_split] if m_split < len(z) else slice(None)
            try:
                split = marginal_kl_terms(table_encoder, marginal, table, z[sub], terms["log_q"][sub],
                                          terms["log_m"][sub], batch_size)
            except (FactorizationError, TypeError) as err:
                note = str(err)
        else:
            note = "not computed (dimensions=False)"
    return surgery_of(terms, analytic, split, note, n)


def surgery_of(terms: dict[str, Tensor], analytic: Tensor | None, split: dict[str, Tensor], note: str,
               examples: int) -> ELBOSurgery:
    """The decomposition from its per-point terms: `terms` of rate_terms for the M draws, `analytic` the
    KL of each drawn example (None: the Monte Carlo KL of the draws stands for it), `split` the
    marginal_kl_terms of the draws used for the split ({}: none, `note` says why), q(z) summed over
    `examples` examples."""
    return ELBOSurgery(
        avg_kl=Estimate.of(analytic if analytic is not None else terms["monte_carlo_kl"]),
        index_code_mi=Estimate.of(terms["index_code_mi"]),
        marginal_kl=Estimate.of(terms["marginal_kl"]),
        total_correlation=Estimate.of(split["total_correlation"]) if split else None,
        dimension_kl=Estimate.of(split["dimension_kl"]) if split else None,
        marginal_dependence=Estimate.of(split["marginal_dependence"]) if split else None,
        examples=examples, points=len(terms["index_code_mi"]),
        dimension_points=len(split["total_correlation"]) if split else 0,
        avg_kl_method="analytic" if analytic is not None else "monte carlo",
        dimension_note=note,
    )


def format_surgery(result: ELBOSurgery) -> str:
    """A short table of the decomposition (nats, ± Monte Carlo standard error)."""
    def row(label: str, est: Estimate | None) -> str:
        if est is None:
            return f"  {label:<32}{'n/a':>10}"
        se = f" ± {est.stderr:.3f}" if math.isfinite(est.stderr) else ""
        return f"  {label:<32}{est.value:10.3f}{se}"

    lines = [
        row(f"average KL ({result.avg_kl_method})", result.avg_kl),
        row("index-code MI I_q(n;z)", result.index_code_mi),
        f"  {'  limit log N':<32}{result.log_n:10.3f}"
        + ("" if result.mi_within_limit else "   VIOLATED: q(z) was not summed over all N"),
        row("marginal KL(q(z)||m(z))", result.marginal_kl),
        row("  total correlation", result.total_correlation),
        row("  dimension-wise KL", result.dimension_kl),
        row("  marginal dependence", result.marginal_dependence),
        f"  {'avg KL - (MI + marginal KL)':<32}{result.identity_residual:10.3f}",
        f"  (q(z) over N = {result.examples}; {result.points} draws, "
        f"{result.dimension_points} for the split)",
    ]
    if result.dimension_note:
        lines.append(f"  split unavailable: {result.dimension_note}")
    return "\n".join(lines)
