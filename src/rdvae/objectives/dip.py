"""DIP-VAE (Kumar, Sattigeri and Balakrishnan, "Variational Inference of Disentangled Latent Concepts
from Unlabeled Observations", ICLR 2018): the negative ELBO plus a penalty that moves a covariance of
the aggregate posterior q(z) = E_x e(z|x) toward the identity, the covariance of the N(0, I) marginal:

    loss = mean_n (D_n + R_n) + lambda_od sum_{i != j} Cov_ij^2 + lambda_d sum_i (Cov_ii - 1)^2

    DIP-VAE-I   Cov = Cov_x[mu(x)]                                  (the encoder means)
    DIP-VAE-II  Cov = Cov_q(z) = E_x[diag sigma^2(x)] + Cov_x[mu(x)]  (q(z)'s covariance, exact
                                                                     for the batch's mixture)

for a diagonal Gaussian encoder e(z|x) = N(mu(x), diag sigma^2(x)), with the moments over the batch
taken as an empirical distribution (divisor B, as disentanglement_lib's `compute_covariance_z_mean`).
lambda_d defaults to 10 lambda_od for DIP-VAE-I and to lambda_od for DIP-VAE-II, the relations the
paper uses (and disentanglement_lib's `lambda_d_factor` 10 and 1); lambda_od defaults to 10.

The penalty is a statistic of a batch, not of an example: R and D stay the model's per-example
figures, and the penalty's two sums are logged as terms (train_dip_off_diagonal, train_dip_diagonal).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.distributions import Distribution

from ..components.distributions import is_diagonal_normal
from ..registry import register_objective
from .base import Objective, ObjectiveError, StepResult, choice, number, training_head

DIP_TYPES = ("i", "ii")
DIAGONAL_FACTOR = {"i": 10.0, "ii": 1.0}   # lambda_d / lambda_od when lambda_d is not given


def dip_covariance(loc: Tensor, scale: Tensor | None = None) -> Tensor:
    """Cov_x[mu(x)] of the batch's means loc [B, d] (divisor B) -> [d, d]; with the encoder's scales
    [B, d] also E_x[diag sigma^2(x)] added: the covariance of DIP-VAE-II."""
    centred = loc - loc.mean(0)
    cov = centred.T @ centred / loc.shape[0]
    if scale is not None:
        cov = cov + torch.diag(scale.square().mean(0))
    return cov


def dip_penalty_terms(cov: Tensor) -> tuple[Tensor, Tensor]:
    """(sum_{i != j} Cov_ij^2, sum_i (Cov_ii - 1)^2) of a covariance [d, d]."""
    diagonal = torch.diagonal(cov)
    return (cov - torch.diag(diagonal)).square().sum(), (diagonal - 1.0).square().sum()


@dataclass(frozen=True)
class DIPObjective(Objective):
    """mean(D + R) + lambda_od * off-diagonal + lambda_d * diagonal penalty (module docstring).

    Needs a diagonal Gaussian encoder (e(z|x) a torch Independent(Normal) over the latent dimension:
    the simple '-' and 'mlp' encoders), checked by `prepare`. R and D are the model's own (`model(x)`);
    the encoder is evaluated once more for the moments, so a step costs one extra encoder pass."""

    dip_type: str = "i"
    lambda_od: float = 10.0
    lambda_d: float | None = None   # None: DIAGONAL_FACTOR[dip_type] * lambda_od

    def __post_init__(self):
        choice("dip_type", self.dip_type, DIP_TYPES)
        number("lambda_od", self.lambda_od, strict=False)
        if self.lambda_d is None:
            object.__setattr__(self, "lambda_d", DIAGONAL_FACTOR[self.dip_type] * float(self.lambda_od))
        number("lambda_d", self.lambda_d, strict=False)

    def posterior_moments(self, q: Distribution, model) -> tuple[Tensor, Tensor]:
        """(mu [B, d], sigma [B, d]) of a diagonal Gaussian e(z|x); an ObjectiveError otherwise."""
        if not is_diagonal_normal(q):
            raise ObjectiveError(
                "the dip-vae objective needs a diagonal Gaussian encoder (e(z|x) a torch Independent(Normal) "
                f"over the latent dimension); the encoder {type(model.encoder).__name__} gives "
                f"{type(q).__name__}. Choose a family with the simple Gaussian encoder ('-' or 'mlp', e.g. "
                "family mlp), not an IAF ('+', 'mlp-iaf') or discrete one")
        return q.base_dist.loc, q.base_dist.scale

    def prepare(self, model, train_x: Tensor) -> None:
        with torch.no_grad():
            self.posterior_moments(model.encoder(training_head(train_x)), model)

    def penalty(self, loc: Tensor, scale: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(weighted penalty, off-diagonal sum, diagonal sum) for the batch's means and scales [B, d]."""
        dtype = torch.promote_types(loc.dtype, torch.float32)
        cov = dip_covariance(loc.to(dtype), scale.to(dtype) if self.dip_type == "ii" else None)
        off, diagonal = dip_penalty_terms(cov)
        return self.lambda_od * off + self.lambda_d * diagonal, off, diagonal

    def __call__(self, model, x: Tensor, step: int = 0) -> StepResult:
        out = model(x)
        penalty, off, diagonal = self.penalty(*self.posterior_moments(model.encoder(x), model))
        loss = (out.distortion.float() + out.rate.float()).mean() + penalty
        return StepResult(loss, out.rate, out.distortion,
                          {"dip_off_diagonal": off.detach(), "dip_diagonal": diagonal.detach()})

    def validation_loss(self, rate: float, distortion: float) -> float:
        """What a plateau criterion watches: R + D, the negative ELBO. The covariance penalty is a
        statistic of a batch that the per-epoch evaluation does not compute (and is small near the
        optimum the weights ask for)."""
        return rate + distortion

    def describe(self) -> str:
        return f"D + R + DIP-{self.dip_type.upper()}(od {self.lambda_od:g}, d {self.lambda_d:g})"


@register_objective("dip-vae", aliases=("dip",))
def dip_vae_objective(dip_type: str = "i", lambda_od: float = 10.0,
                      lambda_d: float | None = None) -> DIPObjective:
    """DIP-VAE (Kumar et al. 2018): D + R + lambda_od sum_{i!=j} Cov_ij^2 + lambda_d sum_i (Cov_ii - 1)^2,
    Cov the batch covariance of the encoder means (dip_type i) or of q(z) (ii). lambda_d defaults to
    10 lambda_od (i) or lambda_od (ii). Needs a diagonal Gaussian encoder."""
    return DIPObjective(dip_type, lambda_od, lambda_d)
