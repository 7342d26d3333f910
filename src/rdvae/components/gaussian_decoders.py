"""Gaussian decoders d(x|z) = N(x; mu(z), sigma^2) whose variance is part of the model.

Most VAE code uses a unit-variance Gaussian (the "MSE VAE") or a squared error with a
hand-picked weight, which is a hidden beta: with sum-of-squares error SSE,

    D = SSE / (2 sigma^2) + d log sigma + (d/2) log(2 pi),

so beta R + D ranks models like SSE + (2 sigma^2 beta) R. `effective_beta` reports that
2 sigma^2 beta (Lin et al. 2019; Rybkin et al. 2021, "sigma-VAE"). The variance choices:

- ``fixed``: sigma given (sigma = 1 is the "MSE VAE").
- ``learned``: one global log sigma learned with the networks.
- ``optimal``: the closed form sigma*^2 = MSE (mean over the batch, the samples of z and every
  data dimension) in training, where it is the minimiser of the batch's negative ELBO; in
  evaluation the average MSE over the training batches seen since the last switch to eval
  mode (the last epoch in the trainer), so evaluation uses one fixed, proper density.
- ``per-dimension``: a variance network sigma_k(z) (Lin et al.): for `warmup_steps` training
  steps the decoder is the global model of `warmup_variance` (optimal or learned); then
  log sigma_k(z) = s + a(t) h_k(z), with s the global log sigma at the switch and a(t) ramping
  linearly from 0 to 1 over `ramp_steps` (0: at once). h's last layer starts at zero, so the
  switch is continuous. The decoder counts its own training steps (forward passes in training
  mode with gradients on), which the trainer's checkpoints save with the weights.

Fitted log sigmas are clipped softly from below, l_min + softplus(l - l_min) with l_min = -6
(sigma-VAE); `log_scale_min=None` disables it. The distortion is always a proper negative
log-density in nats, so R and D stay comparable to every other rdvae model (for data in [0, 1]
it is a density, not a probability, and can be negative).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution, constraints

from ..device import seeded
from .decoders import MLPDecoderTrunk
from .layers import MLP_HIDDEN

VARIANCES = ("fixed", "learned", "optimal", "per-dimension")
WARMUP_VARIANCES = ("optimal", "learned")
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def soft_clip(log_scale: Tensor, minimum: float | None) -> Tensor:
    """l_min + softplus(l - l_min): a smooth lower bound on a log standard deviation."""
    if minimum is None:
        return log_scale
    return minimum + F.softplus(log_scale - minimum)


def gaussian_log_density(x: Tensor, loc: Tensor, log_scale: Tensor, event_dims: int) -> Tensor:
    """log N(x; loc, exp(log_scale)^2) summed over the last `event_dims` dimensions."""
    z = (x - loc) * torch.exp(-log_scale)
    terms = -0.5 * z.square() - log_scale - HALF_LOG_2PI
    return terms.sum(tuple(range(-event_dims, 0))) if event_dims else terms


class GaussianLikelihood(Distribution):
    """Independent Gaussians over an event of `event_dims` trailing dimensions.

    `log_scale` is a tensor broadcastable to `loc`, or None for the batch-optimal scale: then
    log_prob(x) uses log sigma = soft_clip(0.5 log mean((x - loc)^2)), the minimiser of the
    summed negative log-density of this batch (before clipping), and reports the squared
    errors to `on_squared_error(sum, count)`. `sample_log_scale` is the scale sampling uses in
    that case (the decoder's running estimate).
    """

    arg_constraints = {"loc": constraints.real}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc: Tensor, log_scale: Tensor | None, event_dims: int,
                 log_scale_min: float | None = -6.0, sample_log_scale: Tensor | None = None,
                 stop_gradient: bool = False,
                 on_squared_error: Callable[[Tensor, int], None] | None = None):
        self.loc, self.log_scale, self.event_dims = loc, log_scale, event_dims
        self.log_scale_min, self.stop_gradient = log_scale_min, stop_gradient
        self.sample_log_scale = sample_log_scale if log_scale is None else log_scale
        if self.sample_log_scale is None:
            raise ValueError("a batch-optimal GaussianLikelihood needs sample_log_scale for sampling")
        self.on_squared_error = on_squared_error
        split = loc.dim() - event_dims
        super().__init__(loc.shape[:split], loc.shape[split:], validate_args=False)

    @property
    def mean(self) -> Tensor:
        return self.loc

    @property
    def stddev(self) -> Tensor:
        return torch.exp(self.sample_log_scale).expand_as(self.loc)

    @property
    def variance(self) -> Tensor:
        return self.stddev.square()

    def rsample(self, sample_shape=()) -> Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        return self.loc + eps * self.stddev

    def optimal_log_scale(self, x: Tensor) -> Tensor:
        """The clipped batch-optimal log sigma: 0.5 log MSE over every entry of the batch."""
        squared = (x - self.loc).square()
        if self.on_squared_error is not None:
            self.on_squared_error(squared.detach().sum(), squared.numel())
        mse = squared.mean()
        if self.stop_gradient:
            mse = mse.detach()
        return soft_clip(0.5 * torch.log(mse), self.log_scale_min)

    def log_prob(self, x: Tensor) -> Tensor:
        log_scale = self.optimal_log_scale(x) if self.log_scale is None else self.log_scale
        return gaussian_log_density(x, self.loc, log_scale, self.event_dims)


class GaussianDecoder(nn.Module):
    """d(x|z) = N(x; mu(z), sigma^2) with sigma fixed, learned, optimal or per dimension
    (see the module docstring). `trunk` maps z to mu; `variance_trunk` (per-dimension only)
    maps z to the log-sigma offsets h(z), both shaped like the event."""

    def __init__(self, trunk: nn.Module, event_shape: Sequence[int], scale: float = 1.0,
                 variance: str = "fixed", log_scale_min: float | None = -6.0,
                 variance_trunk: nn.Module | None = None, warmup_steps: int = 0, ramp_steps: int = 0,
                 warmup_variance: str = "optimal", stop_gradient: bool = False):
        super().__init__()
        if variance not in VARIANCES:
            raise ValueError(f"unknown decoder variance {variance!r}; choose one of {VARIANCES}")
        if warmup_variance not in WARMUP_VARIANCES:
            raise ValueError(f"warmup_variance must be one of {WARMUP_VARIANCES}, got {warmup_variance!r}")
        if not (isinstance(scale, int | float) and scale > 0):
            raise ValueError(f"the decoder scale sigma must be a positive number, got {scale!r}")
        if warmup_steps < 0 or ramp_steps < 0:
            raise ValueError(f"warmup_steps and ramp_steps must be >= 0, got {warmup_steps}, {ramp_steps}")
        if (variance == "per-dimension") != (variance_trunk is not None):
            raise ValueError("variance='per-dimension' needs a variance_trunk, and only it takes one")
        self.trunk, self.event_shape, self.variance = trunk, tuple(event_shape), variance
        self.scale, self.log_scale_min, self.stop_gradient = float(scale), log_scale_min, stop_gradient
        self.variance_trunk, self.warmup_steps, self.ramp_steps = variance_trunk, warmup_steps, ramp_steps
        self.global_variance = warmup_variance if variance == "per-dimension" else variance
        if self.global_variance == "learned":
            self.raw_log_scale = nn.Parameter(torch.tensor(math.log(scale)))
        if self.global_variance == "optimal":
            # sums of squared errors since the last switch to eval mode, and their mean then
            self.register_buffer("squared_error_sum", torch.zeros((), dtype=torch.float64))
            self.register_buffer("squared_error_count", torch.zeros((), dtype=torch.float64))
            self.register_buffer("running_variance", torch.tensor(scale ** 2))
        if variance == "per-dimension":
            self.register_buffer("steps", torch.zeros((), dtype=torch.long))
            self.register_buffer("switch_log_scale", torch.tensor(math.nan))

    # -- the global variance ---------------------------------------------------------------
    def _accumulate(self, total: Tensor, count: int) -> None:
        if self.training and torch.is_grad_enabled():
            self.squared_error_sum += total.double()
            self.squared_error_count += count

    def train(self, mode: bool = True) -> GaussianDecoder:
        """Switching to eval mode turns the squared errors seen in training into the
        evaluation variance (the running average over the training data)."""
        if not mode and self.global_variance == "optimal" and self.squared_error_count > 0:
            self.running_variance.copy_(self.squared_error_sum / self.squared_error_count)
            self.squared_error_sum.zero_()
            self.squared_error_count.zero_()
        return super().train(mode)

    def _raw_global_log_scale(self) -> Tensor:
        """The global log sigma before clipping, outside a batch: the learned parameter or
        half the log of the running MSE (the seen-so-far average when training)."""
        if self.global_variance == "learned":
            return self.raw_log_scale
        if self.squared_error_count > 0:
            return 0.5 * torch.log(self.squared_error_sum / self.squared_error_count).float()
        return 0.5 * torch.log(self.running_variance)

    def global_log_scale(self) -> Tensor:
        """The clipped global log sigma used in evaluation (and for sampling in training)."""
        if self.variance == "fixed":
            return torch.tensor(math.log(self.scale))
        return soft_clip(self._raw_global_log_scale(), self.log_scale_min)

    # -- the per-dimension schedule ---------------------------------------------------------
    def _counting(self) -> bool:
        return self.variance == "per-dimension" and self.training and torch.is_grad_enabled()

    def network_weight(self) -> float:
        """a(t) in log sigma_k = s + a(t) h_k(z) at training step t (0-based; in evaluation the
        last step trained): 0 during the warm-up, then a linear ramp to 1."""
        if self.variance != "per-dimension":
            return 0.0
        step = int(self.steps) - (0 if self._counting() else 1)
        past = step - self.warmup_steps
        if past < 0:
            return 0.0
        return 1.0 if self.ramp_steps == 0 else min(1.0, (past + 1) / self.ramp_steps)

    def _tick(self) -> None:
        """Count a training step; at the first step after the warm-up, freeze the global log sigma."""
        if not self._counting():
            return
        if int(self.steps) == self.warmup_steps:
            self.switch_log_scale.copy_(self._raw_global_log_scale().detach())
        self.steps += 1

    # -- d(x|z) -----------------------------------------------------------------------------
    def forward(self, z: Tensor) -> GaussianLikelihood:
        weight = self.network_weight()
        self._tick()
        loc = self.trunk(z).float()
        dims = len(self.event_shape)
        if weight > 0:
            offsets = self.variance_trunk(z).float()
            log_scale = soft_clip(self.switch_log_scale + weight * offsets, self.log_scale_min)
            return GaussianLikelihood(loc, log_scale, dims, self.log_scale_min)
        log_scale = self.global_log_scale().to(loc.device)
        if self.global_variance == "optimal" and self.training:
            return GaussianLikelihood(loc, None, dims, self.log_scale_min, sample_log_scale=log_scale,
                                      stop_gradient=self.stop_gradient, on_squared_error=self._accumulate)
        return GaussianLikelihood(loc, log_scale, dims, self.log_scale_min)

    def extra_repr(self) -> str:
        text = f"variance={self.variance!r}, log_scale_min={self.log_scale_min}"
        if self.variance == "fixed":
            text += f", scale={self.scale:g}"
        if self.variance == "per-dimension":
            text += (f", warmup_variance={self.global_variance!r}, warmup_steps={self.warmup_steps}, "
                     f"ramp_steps={self.ramp_steps}")
        return text


def mlp_gaussian_decoder(event_shape, latent_dim: int, hidden=MLP_HIDDEN[::-1], activation="glu",
                         variance: str = "optimal", sigma: float = 1.0,
                         log_sigma_min: float | None = -6.0, variance_warmup_steps: int = 0,
                         variance_ramp_steps: int = 0, warmup_variance: str = "optimal",
                         stop_gradient: bool = False) -> GaussianDecoder:
    """The MLP decoder trunk with a Gaussian likelihood; a second MLP of the same shape gives
    the per-dimension log-sigma offsets (its last layer initialised to zero)."""
    trunk = MLPDecoderTrunk(latent_dim, hidden, event_shape, activation)
    variance_trunk = None
    if variance == "per-dimension":
        variance_trunk = MLPDecoderTrunk(latent_dim, hidden, event_shape, activation)
        last = variance_trunk.net[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    return GaussianDecoder(trunk, event_shape, sigma, variance, log_sigma_min, variance_trunk,
                           variance_warmup_steps, variance_ramp_steps, warmup_variance, stop_gradient)


@torch.no_grad()
def _decoded(model, x: Tensor, batch_size: int):
    """(x batch, d(x|z)) for one z ~ e(z|x) per example, in eval mode and under a fixed seed (its
    own random stream: the caller's is left untouched)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with seeded(0, device), torch.no_grad():
            for start in range(0, len(x), batch_size):
                xb = x[start:start + batch_size].to(device)
                yield xb, model.decoder(model.encoder(xb).sample())
    finally:
        model.train(was_training)


def effective_beta(model, x: Tensor, beta: float = 1.0, batch_size: int = 1000) -> float | None:
    """2 beta sigma^2: the weight on R of the equivalent objective SSE + beta_eff R, where SSE is
    the sum of squared errors (None for a decoder that is not Gaussian). A per-dimension variance
    weights dimension k by 1/(2 sigma_k^2), so sigma^2 is then the harmonic mean of sigma_k(z)^2
    over the dimensions and over z ~ e(z|x) for the examples x (in eval mode)."""
    if not isinstance(model.decoder, GaussianDecoder):
        return None
    precision_sum, count = 0.0, 0
    for _, likelihood in _decoded(model, x, batch_size):
        precision_sum += likelihood.variance.reciprocal().double().sum().item()
        count += likelihood.variance.numel()
    return 2.0 * beta * count / precision_sum


def reconstruction_rmse(model, x: Tensor, batch_size: int = 1000) -> float:
    """sqrt(MSE) of the decoder means for z ~ e(z|x) over every entry of x (one z per example, in
    eval mode): the optimal global sigma of this encoder and decoder on x, sigma*^2 = MSE, the
    sigma that minimises D = SSE / (2 sigma^2) + d log sigma + const (Lin et al.; sigma-VAE). A
    learned global sigma has converged when it is close to this value."""
    squared, count = 0.0, 0
    for xb, likelihood in _decoded(model, x, batch_size):
        squared += (xb - likelihood.mean).double().square().sum().item()
        count += xb.numel()
    return math.sqrt(squared / count)

