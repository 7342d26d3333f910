"""Minibatch estimators of the rate decomposition, for use as a training regularizer.

The rate of a VAE averaged over the N training points splits (Hoffman & Johnson 2016; Chen et
al. 2018, beta-TCVAE) into

    avg_n KL(e(z|x_n) || m(z)) = I_q(n; z) + KL(q(z) || m(z))
    KL(q(z) || m(z))          = TC + dimension-wise KL + marginal dependence

    I_q(n; z)             = E[log e(z|x_n) - log q(z)]                 index-code MI
    TC                    = E[log q(z) - sum_j log q(z_j)]               total correlation
    dimension-wise KL     = E[sum_j log q(z_j) - sum_j log m_j(z_j)]
    marginal dependence   = E[sum_j log m_j(z_j) - log m(z)]             0 when m factorizes

where q(z) = (1/N) sum_n e(z|x_n) is the aggregate posterior and q(z_j), m_j(z_j) are the
one-dimensional marginals. Here q(z) is estimated from a minibatch by minibatch stratified
sampling (MSS, Chen et al. 2018, appendix C): for the minibatch {n_1..n_B} and z_i ~ e(z|x_{n_i}),

    q(z_i) ~= sum_k W_ik e(z_i | x_{n_k}),  W_ii = 1/N  (the own sample, on the DIAGONAL),
    W_i,i+1 (cyclically) = (N - B + 1) / (N (B - 1)),  every other W_ik = 1 / (B - 1).

Each row sums to one and, over uniformly drawn minibatches, the sum is an unbiased estimate of
q(z_i). The public beta-TCVAE code writes the 1/N weights with a stride of B, which lands them in
column 0 instead of the diagonal (and gives row B-2 two stratum weights, row B-1 none); that is
the bug this module does not have.

The log of an unbiased estimate is biased (Jensen), so these minibatch figures are for training
only. For reporting use `rdvae.evaluate.elbo_surgery`, which sums log q(z) over all N points.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.distributions import Distribution, Independent, MixtureSameFamily

from ..components.distributions import DiagonalGaussianMixture, pairwise_log_prob
from ..data.streaming import collate_examples
from ..registry import register_objective
from .base import Objective, ObjectiveError, StepResult, number


class FactorizationError(ValueError):
    """A distribution whose one-dimensional marginals rdvae cannot evaluate."""


def per_dimension_log_prob(dist: Distribution, z: Tensor, max_entries: int = 1 << 24) -> Tensor:
    """log p_j(z_j) of each one-dimensional marginal of `dist` (event [d]) at z [M, d] -> [M, d].

    Factorized distributions (`Independent` over a base with event dim 1: the Gaussian
    encoders and the N(0, I) marginal) give their base log-densities; mixtures of factorized
    components (the learned mixture marginal, the VampPrior) give the 1-D mixtures
    log sum_k w_k p_kj(z_j). Anything else raises FactorizationError.
    """
    if isinstance(dist, Independent) and dist.reinterpreted_batch_ndims == 1:
        return dist.base_dist.log_prob(z)
    if isinstance(dist, DiagonalGaussianMixture):
        components = torch.distributions.Normal(dist.loc, dist.scale, validate_args=False)
        log_weights = dist.log_weights
    elif (isinstance(dist, MixtureSameFamily) and isinstance(dist.component_distribution, Independent)
          and dist.component_distribution.reinterpreted_batch_ndims == 1):
        components = dist.component_distribution.base_dist
        log_weights = torch.log_softmax(dist.mixture_distribution.logits, dim=-1)
    else:
        raise FactorizationError(
            f"cannot evaluate the one-dimensional marginals of {type(dist).__name__}; "
            "the dimension-wise split needs a factorized distribution or a mixture of factorized "
            "components (Independent(Normal), DiagonalGaussianMixture, MixtureSameFamily)")
    k, d = log_weights.shape[0], z.shape[-1]
    step = max(1, max_entries // max(1, k * d))
    out = []
    for zc in z.split(step):
        per_component = components.log_prob(zc.unsqueeze(-2))  # [m, K, d]
        out.append(torch.logsumexp(per_component + log_weights.unsqueeze(-1), dim=-2))
    return torch.cat(out)


def stratified_log_weights(batch_size: int, dataset_size: int, device=None) -> Tensor:
    """log W [B, B] of minibatch stratified sampling, row i for z_i ~ e(z|x_{n_i}); own sample
    weight 1/N on the diagonal, the stratum weight on the cyclic superdiagonal."""
    b, n = int(batch_size), int(dataset_size)
    if b < 2 or n < b:
        raise ValueError(f"stratified sampling needs 2 <= batch size <= dataset size, got B={b}, N={n}")
    w = torch.full((b, b), 1.0 / (b - 1), dtype=torch.float64, device=device)
    rows = torch.arange(b, device=device)
    w[rows, (rows + 1) % b] = (n - b + 1) / (n * (b - 1))
    w[rows, rows] = 1.0 / n
    return w.log()


@dataclass
class MinibatchSurgery:
    """Per-example minibatch estimates [B] (nats); they telescope to log e(z|x) - log m(z)."""

    index_code_mi: Tensor
    total_correlation: Tensor
    dimension_kl: Tensor
    marginal_dependence: Tensor

    @property
    def marginal_kl(self) -> Tensor:
        return self.total_correlation + self.dimension_kl + self.marginal_dependence

    @property
    def rate(self) -> Tensor:
        return self.index_code_mi + self.marginal_kl


def minibatch_surgery(posterior: Distribution, z: Tensor, marginal: Distribution,
                      dataset_size: int) -> MinibatchSurgery:
    """The decomposition of the rate for a minibatch: `posterior` = e(z|x_b) with batch [B] and
    event [d] (factorized), z [B, d] with z_i ~ e(z|x_i), `marginal` = m(z), N = dataset_size.
    Differentiable; biased for reporting (see the module docstring)."""
    log_w = stratified_log_weights(len(z), dataset_size, z.device)
    log_e = pairwise_log_prob(posterior, z).double()                       # [B(z_i), B(x_k)]
    log_e_dims = per_dimension_log_prob(posterior, z.unsqueeze(-2)).double()  # [B, B, d]
    log_own = torch.diagonal(log_e)
    log_q = torch.logsumexp(log_w + log_e, dim=1)
    log_q_dims = torch.logsumexp(log_w.unsqueeze(-1) + log_e_dims, dim=1).sum(-1)
    log_m = marginal.log_prob(z).double()
    log_m_dims = per_dimension_log_prob(marginal, z).double().sum(-1)
    dtype = z.dtype
    return MinibatchSurgery(
        index_code_mi=(log_own - log_q).to(dtype),
        total_correlation=(log_q - log_q_dims).to(dtype),
        dimension_kl=(log_q_dims - log_m_dims).to(dtype),
        marginal_dependence=(log_m_dims - log_m).to(dtype),
    )


@dataclass
class BetaTCObjective(Objective):
    """mean(D) + alpha I_q(n; z) + beta TC + gamma (dimension-wise KL + marginal dependence),
    each term the minibatch estimate (alpha = beta = gamma = 1: the negative ELBO with a Monte
    Carlo rate). beta-TCVAE uses alpha = gamma = 1 and beta > 1. N (dataset_size) is the training
    split's size, set by `prepare` when not given. Needs a factorized encoder (per_dimension_log_prob)."""

    dataset_size: int | None = None
    alpha: float = 1.0
    beta: float = 1.0
    gamma: float = 1.0

    def __post_init__(self):
        for name in ("alpha", "beta", "gamma"):
            number(name, getattr(self, name), strict=False)

    def prepare(self, model, train_x: Tensor) -> None:
        if self.dataset_size is None:
            self.dataset_size = len(train_x)
        head = train_x[:2] if isinstance(train_x, Tensor) else collate_examples([train_x[0], train_x[1]])
        with torch.no_grad():
            try:
                q = model.encoder(head)
                per_dimension_log_prob(q, q.sample().unsqueeze(-2))
                per_dimension_log_prob(model.marginal_distribution(), q.sample())
            except FactorizationError as err:
                raise ObjectiveError(f"the beta-TC objective needs a factorized encoder and marginal: {err}; "
                                     "choose a family with the simple (Gaussian) encoder") from None

    def loss(self, distortion: Tensor, terms: MinibatchSurgery, step: int = 0) -> Tensor:
        return (distortion.mean() + self.alpha * terms.index_code_mi.mean()
                + self.beta * terms.total_correlation.mean()
                + self.gamma * (terms.dimension_kl + terms.marginal_dependence).mean())

    def __call__(self, model, x: Tensor, step: int = 0) -> StepResult:
        if self.dataset_size is None:
            raise ObjectiveError("the beta-TC objective needs the training set size: call prepare() first")
        q = model.encoder(x)
        z = q.rsample()                                          # [B, d]
        distortion = model.distortion_of(x, z.unsqueeze(0))[0]   # [B]
        terms = minibatch_surgery(q, z, model.marginal_distribution(), self.dataset_size)
        return StepResult(self.loss(distortion.float(), terms, step), terms.rate, distortion)

    def describe(self) -> str:
        return f"D + {self.alpha:g} I + {self.beta:g} TC + {self.gamma:g} dimKL"


@register_objective("beta-tc")
def beta_tc_objective(beta: float = 1.0, alpha: float = 1.0, gamma: float = 1.0) -> BetaTCObjective:
    """beta-TCVAE: D + alpha I_q(n; z) + beta TC + gamma dimension-wise KL, minibatch-stratified
    estimates over the training set (biased; for training). beta is the run's --beta (the weight on
    the total correlation); alpha and gamma are objective_options."""
    return BetaTCObjective(None, alpha, beta, gamma)
