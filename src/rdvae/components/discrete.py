"""Discrete latents: binary codes b in {0,1}^d and categorical (one-hot) states, as encoders
and marginals in the same (R, D) framework.

    e(b|x) = prod_i Bernoulli(b_i; sigmoid(a_i(x)))        BernoulliEncoder
    e(z|x) = softmax(l(x)) over K one-hot states           CategoricalEncoder
    e(z|x) ~ exp <g(x), z_b>, z_b the bits of state z       FactorizedBitsEncoder
    m(b)   = prod_i Bernoulli(b_i; 1/2) or learned          BernoulliMarginal
    m(z)   = uniform or learned softmax over K states       CategoricalMarginal

The rate KL(e || m) is analytic for both pairs (registered here for BernoulliCode, by torch for
OneHotCategorical/OneHotCategorical), so `VAE` picks it up unchanged. The
distortion's gradient with respect to the encoder needs an estimator: see `rdvae.estimators`.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Bernoulli, Distribution, Independent, OneHotCategorical, register_kl

from .marginals import Marginal


class BernoulliCode(Independent):
    """Independent bits with logits a, event shape [d]: log e(b) = <a, b> - sum_i softplus(a_i).

    The log-density is a contraction over bits, so evaluating a batch of K codes at M points
    (z [M, 1, d] against batch [K]) costs a matrix product, not an [M, K, d] broadcast; the
    aggregate-posterior evaluators rely on that.
    """

    @property
    def logits(self) -> Tensor:
        return self.base_dist.logits

    def log_prob(self, value: Tensor) -> Tensor:
        a = self.logits
        return torch.einsum("...d,...d->...", value.to(a.dtype), a) - F.softplus(a).sum(-1)


@register_kl(BernoulliCode, BernoulliCode)
def _kl_bernoulli_code(q: BernoulliCode, p: BernoulliCode) -> Tensor:
    """KL(q || p) = sum_i softplus(c_i) - softplus(a_i) + sigmoid(a_i) (a_i - c_i) for logits a
    of q and c of p: stable for any logits and broadcast over batch shapes (torch's
    Bernoulli/Bernoulli KL needs equal shapes)."""
    a, c = q.logits, p.logits
    return (F.softplus(c) - F.softplus(a) + torch.sigmoid(a) * (a - c)).sum(-1)


def bernoulli_code(logits: Tensor) -> BernoulliCode:
    """The factorized Bernoulli distribution over the last dimension of `logits`."""
    return BernoulliCode(Bernoulli(logits=logits, validate_args=False), 1, validate_args=False)


def one_hot_categorical(logits: Tensor) -> OneHotCategorical:
    return OneHotCategorical(logits=logits, validate_args=False)


def bit_table(bits: int) -> Tensor:
    """All 2^bits binary strings z_b as rows [2^bits, bits], state k = binary digits of k
    (most significant bit first): 00, 01, 10, 11 for two bits."""
    if not 1 <= bits <= 20:
        raise ValueError(f"bit_table enumerates 2^bits states; bits must be in 1..20, got {bits}")
    return torch.tensor(list(itertools.product((0.0, 1.0), repeat=bits)))


class BernoulliEncoder(nn.Module):
    """e(b|x): a trunk (x -> features) then Linear(d) to the logits of d independent bits."""

    def __init__(self, trunk: nn.Module, latent_dim: int):
        super().__init__()
        self.trunk, self.latent_dim = trunk, latent_dim
        self.logits = nn.Linear(trunk.out_features, latent_dim)

    def forward(self, x: Tensor) -> BernoulliCode:
        return bernoulli_code(self.logits(self.trunk(x)).float())


class CategoricalEncoder(nn.Module):
    """e(z|x) = softmax(Linear(trunk(x))) over K one-hot states. With an identity trunk on the
    Gaussian-mixture toy this is the consistent encoder (the exact posterior family)."""

    def __init__(self, trunk: nn.Module, states: int):
        super().__init__()
        self.trunk, self.latent_dim = trunk, states
        self.logits = nn.Linear(trunk.out_features, states)

    def forward(self, x: Tensor) -> OneHotCategorical:
        return one_hot_categorical(self.logits(self.trunk(x)).float())


class FactorizedBitsEncoder(nn.Module):
    """e(z|x) proportional to exp <g(x), z_b> over the 2^B states z, z_b the B bits of state z.

    A softmax over 2^B one-hot states whose logits are linear in the bits, so the distribution
    factorizes over bits: it cannot represent a posterior with interactions between bits.
    """

    def __init__(self, trunk: nn.Module, bits: int):
        super().__init__()
        self.trunk, self.bits, self.latent_dim = trunk, bits, 2 ** bits
        self.g = nn.Linear(trunk.out_features, bits)
        self.register_buffer("z_b", bit_table(bits), persistent=False)

    def forward(self, x: Tensor) -> OneHotCategorical:
        return one_hot_categorical(self.g(self.trunk(x)).float() @ self.z_b.T)


class IdentityTrunk(nn.Module):
    """Flat x as the features (for encoders that are a single linear map of x)."""

    def __init__(self, features: int):
        super().__init__()
        self.out_features = features

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1)


class BernoulliMarginal(Marginal):
    """m(b) = prod_i Bernoulli(b_i; sigmoid(w_i)); w = 0 (fair coins) unless learned."""

    def __init__(self, latent_dim: int, learned: bool = False):
        super().__init__()
        self.latent_dim = latent_dim
        logits = torch.zeros(latent_dim)
        if learned:
            self.logits = nn.Parameter(logits)
        else:
            self.register_buffer("logits", logits, persistent=False)

    def forward(self, encoder: nn.Module | None = None) -> Distribution:
        return bernoulli_code(self.logits)


class CategoricalMarginal(Marginal):
    """m(z) = softmax(w) over K one-hot states; w = 0 (uniform) unless learned."""

    def __init__(self, states: int, learned: bool = False):
        super().__init__()
        self.latent_dim = states
        logits = torch.zeros(states)
        if learned:
            self.logits = nn.Parameter(logits)
        else:
            self.register_buffer("logits", logits, persistent=False)

    def forward(self, encoder: nn.Module | None = None) -> Distribution:
        return one_hot_categorical(self.logits)
