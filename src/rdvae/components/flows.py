"""Autoregressive flows: MADE, the IAF encoder posterior and the MAF-style flow marginal.

One autoregressive affine step with an ordering of the d latent dimensions is

    y_i = x_i * exp(s_i(x_<i)) + m_i(x_<i),     log|det dy/dx| = sum_i s_i(x_<i),

with (m, s) from a MADE (Germain et al. 2015). The paper's flows are *mean-only*: s = 0, so
every step is volume preserving and its log-determinant is 0 (it is still computed, from s,
so the same code serves affine steps). x -> y is one MADE pass; y -> x is d sequential passes.

- IAF posterior (Kingma et al. 2016; the paper's complex encoder): z0 ~ N(mu(x), sigma(x)),
  z = f(z0) through the steps in their one-pass direction, so sampling is cheap and
  log e(z|x) = log N(f^-1(z); mu, sigma) - log|det J_f(f^-1(z))| needs the sequential inverse.
  The steps do not depend on x (the conv trunk's Gaussian is followed by a fixed flow, as in
  the paper's appendix F.1), so f^-1(z) is computed once per point z and reused for every
  x: a batch of z against a batch of posteriors costs one inversion and one Gaussian matmul
  (pairwise_log_prob, I_q). Inverses are cached per tensor, as torch's Transform caches do.
- Flow marginal (Papamakarios et al. 2017; the paper's (+) marginal): u = g(z) through the
  steps in their one-pass direction, u ~ N(0, I): log m(z) = log N(g(z); 0, I) + log|det J_g(z)|
  is one pass per step, and sampling z = g^-1(u) is sequential.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, constraints

from .distributions import LOG_2PI, gaussian_pairwise_log_prob, is_diagonal_normal
from .layers import MADE_HIDDEN
from .marginals import Marginal

MEAN_SAMPLES = 256  # Monte Carlo draws behind IAFPosterior.mean


def made_degrees(features: int, hidden: Sequence[int], order: Tensor) -> list[Tensor]:
    """Degrees of the input units (the autoregressive order, 1..d), then of each hidden layer
    (cycling through 1..d-1, so every unit can reach some output)."""
    degrees = [order]
    top = max(1, features - 1)
    for width in hidden:
        degrees.append(torch.arange(width) % top + 1)
    return degrees


class MaskedLinear(nn.Linear):
    def __init__(self, in_features: int, out_features: int, mask: Tensor):
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.float(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """Masked autoencoder: `outputs` values per input dimension, output i (in the given
    order) depends only on inputs earlier in the order. ReLU hidden layers (appendix F).

    forward(x [..., d]) -> [..., outputs, d]. The last layer starts at zero, so a flow built
    from MADEs starts at the identity.
    """

    def __init__(self, features: int, hidden: Sequence[int] = MADE_HIDDEN, outputs: int = 1,
                 order: Tensor | None = None):
        super().__init__()
        if features < 1 or not hidden:
            raise ValueError(f"MADE needs features >= 1 and a hidden layer, got {features}, {hidden}")
        order = torch.arange(1, features + 1) if order is None else torch.as_tensor(order)
        if sorted(order.tolist()) != list(range(1, features + 1)):
            raise ValueError(f"order must be a permutation of 1..{features}, got {order.tolist()}")
        self.features, self.outputs = features, outputs
        self.register_buffer("order", order.clone(), persistent=False)
        degrees = made_degrees(features, hidden, order)
        layers: list[nn.Module] = []
        for d_in, d_out in zip(degrees[:-1], degrees[1:], strict=True):
            layers += [MaskedLinear(len(d_in), len(d_out), d_out[:, None] >= d_in[None, :]), nn.ReLU()]
        out_degrees = order.repeat(outputs)
        last = MaskedLinear(len(degrees[-1]), features * outputs, out_degrees[:, None] > degrees[-1][None, :])
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers, last)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).reshape(*x.shape[:-1], self.outputs, self.features)


class AutoregressiveAffine(nn.Module):
    """y_i = x_i exp(s_i(x_<i)) + m_i(x_<i); mean-only (s = 0) unless `mean_only=False`."""

    def __init__(self, features: int, hidden: Sequence[int] = MADE_HIDDEN, mean_only: bool = True,
                 reverse: bool = False):
        super().__init__()
        order = torch.arange(features, 0, -1) if reverse else torch.arange(1, features + 1)
        self.mean_only = mean_only
        self.made = MADE(features, hidden, 1 if mean_only else 2, order)
        # positions sorted by the order, for the sequential inverse
        self.register_buffer("position", torch.argsort(order), persistent=False)

    def shift_log_scale(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = self.made(x)
        shift = out[..., 0, :]
        log_scale = torch.zeros_like(shift) if self.mean_only else out[..., 1, :]
        return shift, log_scale

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """One pass: (y, log|det dy/dx|)."""
        shift, log_scale = self.shift_log_scale(x)
        return x * log_scale.exp() + shift, log_scale.sum(-1)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """d sequential passes: (x, log|det dy/dx| at x). Dimension k of the order is exact
        after pass k, since its shift depends only on dimensions before it."""
        x = torch.zeros_like(y)
        log_scale = torch.zeros_like(y)
        for i in self.position.tolist():
            shift, log_scale = self.shift_log_scale(x)
            x = x.clone()
            x[..., i] = (y[..., i] - shift[..., i]) * torch.exp(-log_scale[..., i])
        return x, log_scale.sum(-1)


class AutoregressiveFlow(nn.Module):
    """A stack of autoregressive affine steps with alternating order.

    forward(x) -> (y, logdet) is one pass per step; inverse(y) -> (x, logdet of forward at x)
    is sequential and cached: asking again for the inverse of the same points (the same
    memory, unmodified, as a view of any shape; parameters unchanged) returns the stored
    result, and the points produced by
    `forward` are remembered with their inputs, so the density of a fresh sample costs
    nothing extra.
    """

    def __init__(self, features: int, steps: int = 4, hidden: Sequence[int] = MADE_HIDDEN,
                 mean_only: bool = True, cache_size: int = 4):
        super().__init__()
        self.features = features
        self.steps = nn.ModuleList(
            AutoregressiveAffine(features, hidden, mean_only, reverse=bool(k % 2)) for k in range(steps)
        )
        self.cache_size = cache_size
        self._cache: list[tuple] = []

    def _state(self) -> tuple:
        return (tuple(p._version for p in self.parameters()), torch.is_grad_enabled(),
                torch.is_inference_mode_enabled())

    @staticmethod
    def _key(y: Tensor) -> tuple:
        """What identifies the points of y: the memory they live in and its version (views of
        the same rows, e.g. z and z.unsqueeze(-2), share it; the cache holds a reference, so
        the memory cannot be reused by another tensor while cached)."""
        version = None if y.is_inference() else y._version
        return (y.data_ptr(), y.shape, y.stride(), y.dtype, y.device, version)

    def _remember(self, y: Tensor, x: Tensor, logdet: Tensor) -> None:
        if self.cache_size:
            flat = y.reshape(-1, self.features)
            entry = (flat, self._key(flat), x.reshape(-1, self.features), logdet.reshape(-1), self._state())
            self._cache = [*self._cache[-(self.cache_size - 1):], entry]

    def forward(self, x: Tensor, remember: bool = True) -> tuple[Tensor, Tensor]:
        logdet = torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)
        y = x
        for step in self.steps:
            y, ld = step(y)
            logdet = logdet + ld
        if remember:
            self._remember(y, x, logdet)
        return y, logdet

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        flat = y.reshape(-1, self.features)
        key, state = self._key(flat), self._state()
        for cached, cached_key, x, logdet, cached_state in self._cache:
            # with gradients wanted through y, only the same graph may be served (a view of
            # the very tensor that was cached), else x would not depend on y
            same_graph = not flat.requires_grad or _root(flat) is _root(cached)
            if cached_key == key and cached_state == state and same_graph:
                return x.reshape(y.shape), logdet.reshape(y.shape[:-1])
        logdet = torch.zeros(y.shape[:-1], dtype=y.dtype, device=y.device)
        x = y
        for step in reversed(self.steps):
            x, ld = step.inverse(x)
            logdet = logdet + ld
        self._remember(y, x, logdet)
        return x, logdet


def _root(t: Tensor) -> Tensor:
    return t if t._base is None else t._base


def _gaussian_log_prob(base: Independent, z0: Tensor) -> Tensor:
    """log N(z0; loc, scale) broadcasting z0 [..., d] against the batch of `base`; points of
    the form [M, 1, d] against a batch [K] take the fp64 matmul path ([M, K] out)."""
    loc, scale = base.base_dist.loc, base.base_dist.scale
    if loc.dim() == 2 and z0.dim() >= 2 and z0.shape[-2] == 1 and loc.shape[0] > 1:
        flat = z0.reshape(-1, z0.shape[-1])
        return gaussian_pairwise_log_prob(flat, loc, scale).reshape(*z0.shape[:-2], loc.shape[0])
    return base.log_prob(z0)


class IAFPosterior(Distribution):
    """e(z|x): z = f(z0), z0 ~ N(loc(x), diag(scale(x)^2)), f an x-independent IAF.

    log_prob includes the flow's log-determinant and broadcasts like a batched Gaussian:
    points [M, 1, d] against a batch [K] give [M, K] with one inversion of the M points.
    `mean` has no closed form; it is a Monte Carlo estimate from MEAN_SAMPLES draws with a
    fixed seed (so repeated calls agree).
    """

    arg_constraints = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, base: Independent, flow: AutoregressiveFlow):
        if not is_diagonal_normal(base):
            raise TypeError("IAFPosterior needs a diagonal Gaussian base distribution")
        self.base, self.flow = base, flow
        super().__init__(base.batch_shape, base.event_shape, validate_args=False)

    def rsample(self, sample_shape=()) -> Tensor:
        z, _ = self.flow(self.base.rsample(torch.Size(sample_shape)))
        return z

    def sample(self, sample_shape=()) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, value: Tensor) -> Tensor:
        z0, logdet = self.flow.inverse(value)
        return _gaussian_log_prob(self.base, z0) - logdet

    @property
    def mean(self) -> Tensor:
        generator = torch.Generator(device=self.base.base_dist.loc.device).manual_seed(0)
        loc, scale = self.base.base_dist.loc, self.base.base_dist.scale
        eps = torch.randn((MEAN_SAMPLES, *loc.shape), generator=generator, device=loc.device, dtype=loc.dtype)
        with torch.no_grad():
            z, _ = self.flow(loc + scale * eps, remember=False)
        return z.mean(0)

    def expand(self, batch_shape, _instance=None):
        return IAFPosterior(self.base.expand(batch_shape), self.flow)


class IAFEncoder(nn.Module):
    """The complex encoder (+): a Gaussian encoder followed by `steps` mean-only IAF steps."""

    def __init__(self, gaussian: nn.Module, latent_dim: int, steps: int = 4,
                 hidden: Sequence[int] = MADE_HIDDEN, mean_only: bool = True):
        super().__init__()
        self.gaussian, self.latent_dim = gaussian, latent_dim
        self.flow = AutoregressiveFlow(latent_dim, steps, hidden, mean_only)

    def forward(self, x: Tensor) -> IAFPosterior:
        return IAFPosterior(self.gaussian(x), self.flow)


class FlowDistribution(Distribution):
    """m(z) with u = g(z) ~ N(0, I): log m(z) = log N(g(z)) + log|det J_g(z)| (one pass per
    step); sampling z = g^-1(u), u ~ N(0, I) (sequential)."""

    arg_constraints = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, flow: AutoregressiveFlow):
        self.flow = flow
        super().__init__(torch.Size(), torch.Size([flow.features]), validate_args=False)

    def log_prob(self, value: Tensor) -> Tensor:
        u, logdet = self.flow(value, remember=False)
        return -0.5 * (u.pow(2).sum(-1) + self.flow.features * LOG_2PI) + logdet

    def rsample(self, sample_shape=()) -> Tensor:
        param = next(self.flow.parameters())
        u = torch.randn((*sample_shape, self.flow.features), device=param.device, dtype=param.dtype)
        z, _ = self.flow.inverse(u)
        return z

    def sample(self, sample_shape=()) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)


class AutoregressiveFlowMarginal(Marginal):
    """The complex marginal (+): N(0, I) through `steps` mean-only Gaussian autoregressive
    flow layers (MAF-style), each shift from a MADE (appendix F.3)."""

    def __init__(self, latent_dim: int, steps: int = 4, hidden: Sequence[int] = MADE_HIDDEN,
                 mean_only: bool = True):
        super().__init__()
        self.latent_dim = latent_dim
        self.flow = AutoregressiveFlow(latent_dim, steps, hidden, mean_only, cache_size=0)

    def forward(self, encoder: nn.Module | None = None) -> FlowDistribution:
        return FlowDistribution(self.flow)


__all__ = [
    "MADE",
    "AutoregressiveAffine",
    "AutoregressiveFlow",
    "AutoregressiveFlowMarginal",
    "FlowDistribution",
    "IAFEncoder",
    "IAFPosterior",
]
