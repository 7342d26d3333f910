"""Beta-conditioned gates of the Multi-Rate VAE (Bae et al., ICLR 2023, eqs. 6-9, app. B).

Every linear or convolutional layer of a multi-rate model keeps its base weight and bias and
scales each output unit (each filter, for convolutions) by a gate computed from log beta:

    s = g(eta) * (W a + b),   eta = (log beta - mean) / std   (log beta standardized)
    g(eta) = sigmoid(k w eta + b_g)                   in the encoder
    g(eta) = sqrt(relu(1 - exp(k w eta + b_g)))       in the decoder

with one (w, b_g) pair per output unit: 2 extra parameters per unit and two elementwise
products per layer. mean and std are those of log beta ~ Uniform[log a, log b], the training
range, so eta is fixed by the range set before training and lies in [-sqrt 3, sqrt 3] there.
k (gate_slope_scale, default 10) does not change what the gates can express, only how fast Adam
moves their slopes (by k times): with k = 1, the paper's parameterization, the slopes stayed
small and the rate answered too weakly to beta at the ends of the range
(docs/results/multi-rate.md).

The gated families are the plain ones with every nn.Linear / nn.Conv2d / nn.ConvTranspose2d
wrapped in place (`gate_layers`); nothing is copied. By default their decoders also get a gated
square layer in front (one gate per latent direction, `latent_gate`) and leave the layer that
makes the logits ungated (`gate_output=False`); see multi_rate_decoder. A gated linear unit layer
(layers.Gated: h = a * sigmoid(b) with [a; b] = W x + c) is gated on its C output units h, as the
paper gates a ReLU layer's units: g * relu(W x + c) = relu(g * (W x + c)) there, and
g * a * sigmoid(b) here, i.e. the rows of W and c that make `a` scaled by g and the sigmoid's
half left alone. (Gating all 2C rows would also bend the sigmoid, and cost twice as much.)
Which beta the gates see is set for a whole model with `conditioned_on(model, beta)`: a
number (every example at that beta, any batch size) or a tensor [B] (one beta per example; a
layer whose batch is S*B, such as the decoder over S samples of z laid out sample-major,
repeats it S times). A gated model used outside `conditioned_on` is at DEFAULT_BETA = 1, the
ELBO's weight.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from .layers import Gated

DEFAULT_BETA = 1.0
DEFAULT_BETA_RANGE = (0.01, 10.0)
ROLES = ("encoder", "decoder")
GATED_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)
# initial gate value of every unit (w = 0, so the same at every beta): close to the plain layer
INITIAL_GATE = 0.9
# "open": w = 0 and every gate at INITIAL_GATE; "random-slopes": the same gates at the middle of the
# range, slopes w ~ U(-1, 1); "paper": w, b ~ U(-1, 1), the default init of the paper's
# nn.Linear(1, features) (appendix B.2)
GATE_INITS = ("open", "random-slopes", "paper")
# the slope of every gate is k w with w the parameter and k = gate_slope_scale: the same gates, but
# Adam moves the slopes k times faster (the measurements behind the default: docs/results/multi-rate.md)
DEFAULT_SLOPE_SCALE = 10.0


GATE_OPTIONS = ("beta_min", "beta_max", "gate_init", "gate_slope_scale")   # BetaGate's options
DECODER_OPTIONS = ("latent_gate", "gate_output")   # multi_rate_decoder's own options


def gate_options(options: dict, role: str = "encoder") -> dict:
    """The options of multi_rate_encoder / multi_rate_decoder (role) among a family's model
    options."""
    names = GATE_OPTIONS + (DECODER_OPTIONS if role == "decoder" else ())
    return {k: v for k, v in options.items() if k in names}


def check_beta_range(beta_min: float, beta_max: float) -> tuple[float, float]:
    beta_min, beta_max = float(beta_min), float(beta_max)
    if not (math.isfinite(beta_min) and math.isfinite(beta_max) and 0 < beta_min < beta_max):
        raise ValueError(f"the beta range needs 0 < beta_min < beta_max (finite), got "
                         f"[{beta_min!r}, {beta_max!r}]")
    return beta_min, beta_max


def log_beta_moments(beta_min: float, beta_max: float) -> tuple[float, float]:
    """Mean and standard deviation of log beta ~ Uniform[log beta_min, log beta_max]."""
    lo, hi = map(math.log, check_beta_range(beta_min, beta_max))
    return (lo + hi) / 2, (hi - lo) / math.sqrt(12)


def encoder_gate(pre: Tensor) -> Tensor:
    """sigmoid(pre): the encoder's gate activation."""
    return torch.sigmoid(pre)


def sqrt_gate_(pre: Tensor) -> Tensor:
    """sqrt(relu(1 - exp(pre))), computed in place of `pre` (no autograd). exp, not expm1: on
    CPUs expm1 is not vectorised (3x slower), and in float32 the two differ by more than 1% only
    where the gate is below 0.003, a unit that is switched off either way."""
    return torch.exp_(pre).neg_().add_(1.0).clamp_(min=0).sqrt_()


def sqrt_gate_backward_2x(grad: Tensor, gate: Tensor) -> Tensor:
    """2 * grad * d gate / d pre from the gate alone, in three passes: d gate / d pre =
    -exp(pre) / (2 g) = (g - 1/g) / 2 where g > 0, and 0 where relu cuts (g = 0). The factor
    1/2 is left to the caller (to apply on a smaller tensor)."""
    return torch.mul(gate, grad).addcdiv_(grad, gate, value=-1.0).nan_to_num_(0.0, 0.0, 0.0)


class _DecoderGate(torch.autograd.Function):
    """The decoder's gate with its derivative taken from the gate alone (finite everywhere)."""

    @staticmethod
    def forward(ctx, pre: Tensor) -> Tensor:
        gate = sqrt_gate_(pre.clone())
        ctx.save_for_backward(gate)
        return gate

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (gate,) = ctx.saved_tensors
        return sqrt_gate_backward_2x(grad, gate).mul_(0.5)


def decoder_gate(pre: Tensor) -> Tensor:
    """sqrt(relu(1 - exp(pre))): the decoder's gate activation (exact for linear VAEs); for
    pre >= 0 the gate and its gradient are 0, as for relu."""
    return _DecoderGate.apply(pre)


ACTIVATIONS = {"encoder": encoder_gate, "decoder": decoder_gate}
INVERSE = {"encoder": lambda g: math.log(g / (1 - g)), "decoder": lambda g: math.log(1 - g * g)}


class BetaGate(nn.Module):
    """The per-unit gate g(eta) = act(k w eta + b) of one layer with `features` output units
    (k = gate_slope_scale, w and b the parameters)."""

    def __init__(self, features: int, role: str, beta_min: float = DEFAULT_BETA_RANGE[0],
                 beta_max: float = DEFAULT_BETA_RANGE[1], gate_init: str = "open",
                 gate_slope_scale: float = DEFAULT_SLOPE_SCALE):
        super().__init__()
        if role not in ROLES:
            raise ValueError(f"gate role must be one of {ROLES}, got {role!r}")
        if gate_init not in GATE_INITS:
            raise ValueError(f"gate_init must be one of {GATE_INITS}, got {gate_init!r}")
        slope_scale = float(gate_slope_scale)
        if not (math.isfinite(slope_scale) and slope_scale > 0):
            raise ValueError(f"gate_slope_scale must be a positive number, got {gate_slope_scale!r}")
        self.role, self.features = role, features
        # the standardization is part of the model: saved with the weights
        self.register_buffer("log_beta_mean", torch.tensor(0.0))
        self.register_buffer("log_beta_std", torch.tensor(1.0))
        # saved with the weights (a checkpoint from before it existed loads with 1, as trained)
        self.register_buffer("slope_scale", torch.tensor(slope_scale))
        # the same numbers as Python floats (no device sync per step): the key under which
        # conditioned_on shares one [k eta; 1] between the gates of a model
        self.eta_key = (0.0, 1.0, slope_scale)
        self.set_range(beta_min, beta_max)
        self.weight = nn.Parameter(torch.zeros(features))
        self.bias = nn.Parameter(torch.full((features,), INVERSE[role](INITIAL_GATE)))
        with torch.no_grad():
            if gate_init != "open":
                self.weight.uniform_(-1.0, 1.0)
            if gate_init == "paper":
                self.bias.uniform_(-1.0, 1.0)
        self.beta: Tensor | float | None = None   # set by conditioned_on
        # per-example betas, standardized once for all gates: [eta; 1] of shape [2, B]
        self.eta_ones: Tensor | None = None

    def set_range(self, beta_min: float, beta_max: float) -> None:
        """Standardize log beta by the moments of log beta ~ Uniform[log beta_min, log beta_max]."""
        mean, std = log_beta_moments(beta_min, beta_max)
        self.log_beta_mean.fill_(mean)
        self.log_beta_std.fill_(std)
        self.eta_key = (mean, std, self.eta_key[2])

    def standardize(self, beta: Tensor | float) -> Tensor:
        log_beta = torch.as_tensor(beta, dtype=self.weight.dtype, device=self.weight.device).log()
        return (log_beta - self.log_beta_mean) / self.log_beta_std

    def forward(self, beta: Tensor | float) -> Tensor:
        """Gates for beta (a number -> [features]; a tensor [B] -> [B, features])."""
        eta = self.standardize(beta)
        pre = torch.addcmul(self.bias, eta.unsqueeze(-1), self.weight, value=self.k)
        return ACTIVATIONS[self.role](pre)

    @property
    def k(self) -> float:
        """The slope scale as a Python float."""
        return self.eta_key[2]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "slope_scale"
        if key not in state_dict:   # saved before the slope scale existed: trained with 1
            state_dict[key] = torch.tensor(1.0)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.eta_key = (float(self.log_beta_mean), float(self.log_beta_std), float(self.slope_scale))

    def extra_repr(self) -> str:
        return f"features={self.features}, role={self.role}"


class BetaGated(nn.Module):
    """A linear or convolutional layer whose output units are scaled by a BetaGate:
    layer(x) * g(eta), i.e. the layer with weight rows and bias scaled by g (eq. 6)."""

    def __init__(self, layer: nn.Module, role: str, **gate_options):
        super().__init__()
        base, halves = (layer.layer, 2) if isinstance(layer, Gated) else (layer, 1)
        if not isinstance(base, GATED_TYPES):
            raise TypeError(f"only {', '.join(t.__name__ for t in GATED_TYPES)} layers (or gated linear "
                            f"units of them) can be gated, got {type(base).__name__}")
        self.layer = layer
        self.unit_dim = -1 if isinstance(base, nn.Linear) else 1
        features = base.out_features if isinstance(base, nn.Linear) else base.out_channels
        self.gate = BetaGate(features // halves, role, **gate_options)

    def forward(self, x: Tensor) -> Tensor:
        out = self.layer(x)
        gate = self.gate
        beta = DEFAULT_BETA if gate.beta is None else gate.beta
        if isinstance(beta, Tensor):   # one beta per example: a fused gate-and-scale
            batch, rows = beta.shape[0], out.shape[0]
            if rows % batch:
                raise ValueError(
                    f"{rows} rows reached a gated layer conditioned on {batch} per-example betas; "
                    "per-example betas need a batch of B or S*B rows (sample-major). Condition "
                    "on a single beta instead (e.g. for a VampPrior's pseudo-inputs)")
            eta_ones = gate.eta_ones if gate.eta_ones is not None else eta_with_ones(gate, beta)
            return PerExampleGating.apply(out, eta_ones, gate.weight, gate.bias,
                                           gate.role == "decoder", self.unit_dim == -1)
        g = gate(beta)
        shape = [1] * out.dim()
        shape[self.unit_dim] = g.shape[0]
        return out * g.reshape(shape).to(out.dtype)


def eta_with_ones(gate: BetaGate, beta: Tensor) -> Tensor:
    """[k eta; 1], shape [2, B]: the standardized log betas times the slope scale k and a row of
    ones, the inputs of the gates' affine map w (k eta) + b (backward: [2, B] @ [B, C] gives
    d/dw and d/db at once)."""
    eta = gate.standardize(beta) * gate.k
    return torch.stack([eta, torch.ones_like(eta)])


class PerExampleGating(torch.autograd.Function):
    """y = out * g with g[b, c] = act(w_c eta_b + b_c) broadcast over the S samples of a batch
    laid out sample-major (out [S*B, C] or [S*B, C, H, W]): the same function as BetaGate and a
    product, in fewer passes over [B, C] than autograd takes (gate derivatives from g alone:
    g (1 - g) for the sigmoid, (g - 1/g) / 2 for the decoder's sqrt gate, 0 where it is cut).
    eta_ones is [eta; 1] (eta_with_ones), shared by all the gates of a model."""

    @staticmethod
    def forward(ctx, out, eta_ones, weight, bias, decoder: bool, linear: bool):
        batch = eta_ones.shape[1]
        pre = torch.addcmul(bias, eta_ones[0].unsqueeze(1), weight)                # [B, C]
        g = sqrt_gate_(pre) if decoder else pre.sigmoid_()
        view = (-1, batch, g.shape[1]) + (() if linear else (1,) * (out.dim() - 2))
        y = (out.view(-1, batch, *out.shape[1:]) * g.view(view).to(out.dtype)).view(out.shape)
        ctx.save_for_backward(out, eta_ones, g)
        ctx.decoder, ctx.view = decoder, view
        return y

    @staticmethod
    def backward(ctx, grad):
        out, eta_ones, g = ctx.saved_tensors
        batch = eta_ones.shape[1]
        grad_rows = grad.view(-1, batch, *grad.shape[1:])
        grad_out = (grad_rows * g.view(ctx.view).to(grad.dtype)).view(grad.shape)
        dg = grad_rows * out.view(-1, batch, *out.shape[1:])
        if dg.dim() > 3 or dg.shape[0] > 1:   # sum over the S samples and the pixels
            dg = dg.sum(dim=[0, *range(3, dg.dim())])
        dg = dg.view(batch, -1).to(g.dtype)
        if ctx.decoder:
            sums = (eta_ones @ sqrt_gate_backward_2x(dg, g)).mul_(0.5)   # [2, C]: d/dw, d/db
        else:
            sums = eta_ones @ torch.ops.aten.sigmoid_backward(dg, g)     # dg * g (1 - g), one pass
        return grad_out, None, sums[0], sums[1], None, None


def gate_layers(module: nn.Module, role: str, **gate_options) -> nn.Module:
    """Wrap every linear / conv layer and gated linear unit inside `module` in a BetaGated (in
    place); returns it. gate_options: BetaGate's beta_min, beta_max, gate_init, gate_slope_scale."""
    glu = isinstance(module, Gated) and isinstance(module.layer, GATED_TYPES)
    if glu or isinstance(module, GATED_TYPES):
        return BetaGated(module, role, **gate_options)
    for name, child in module.named_children():
        if isinstance(child, BetaGated):
            continue
        setattr(module, name, gate_layers(child, role, **gate_options))
    return module


def beta_gates(model: nn.Module) -> list[BetaGate]:
    return [m for m in model.modules() if isinstance(m, BetaGate)]


def is_multi_rate(model: nn.Module) -> bool:
    return any(isinstance(m, BetaGate) for m in model.modules())


@contextlib.contextmanager
def conditioned_on(model: nn.Module, beta: Tensor | float) -> Iterator[nn.Module]:
    """Within the block every gate of `model` sees `beta` (a positive number, or a tensor [B]
    of per-example betas); the previous setting is restored afterwards."""
    gates = beta_gates(model)
    if not gates:
        raise ValueError(
            f"{type(model).__name__} has no beta gates, so it cannot be conditioned on beta; "
            "use a multi-rate family such as 'mr-mlp' or 'mr-conv' (trained with --multi-rate)")
    if isinstance(beta, Tensor):
        if beta.dim() > 1 or not bool((beta > 0).all()):
            raise ValueError(f"beta must be a positive number or a [B] tensor of positive numbers, "
                             f"got a tensor of shape {tuple(beta.shape)}")
        if beta.dim() == 0:
            beta = float(beta)
    elif not (isinstance(beta, int | float) and math.isfinite(beta) and beta > 0):
        raise ValueError(f"beta must be a positive finite number, got {beta!r}")
    previous = [(g.beta, g.eta_ones) for g in gates]
    shared: dict[tuple[float, float, float], Tensor] = {}   # one [k eta; 1] per range and scale
    for g in gates:
        g.beta, g.eta_ones = beta, None
        if isinstance(beta, Tensor):
            if g.eta_key not in shared:
                shared[g.eta_key] = eta_with_ones(g, beta).detach()
            g.eta_ones = shared[g.eta_key]
    try:
        yield model
    finally:
        for g, (old_beta, old_eta) in zip(gates, previous, strict=True):
            g.beta, g.eta_ones = old_beta, old_eta


def multi_rate_encoder(encoder: nn.Module, **gate_options) -> nn.Module:
    """A plain encoder with every layer gated by sigmoid(k w eta + b); a Gaussian encoder's
    variance is centred so that closed output gates give the prior N(0, 1) in that dimension
    (GaussianEncoder.centre_at_unit_variance)."""
    gated = gate_layers(encoder, "encoder", **gate_options)
    if hasattr(gated, "centre_at_unit_variance"):
        gated.centre_at_unit_variance()
    return gated


def multi_rate_decoder(decoder: nn.Module, latent_dim: int | None = None, latent_gate: bool = True,
                       gate_output: bool = False, **gate_options) -> nn.Module:
    """A plain decoder with every layer gated by sqrt(relu(1 - exp(k w eta + b))).

    With `latent_gate` (the default), a square linear layer z -> A z + c (A = I, c = 0 at the
    start) goes in front of the decoder's trunk and is gated too: one gate per latent direction, the square D1
    of the decoder D2 D1 in the paper's theorem 1. Without it the first gates sit on hidden
    units, so a latent dimension the encoder has closed at high beta (z_j ~ N(0, 1), noise)
    still reaches every hidden unit. With `gate_output` False (the default) the last layer, the
    one that makes the logits, is left ungated: that pays for the latent gate's cost, and the
    curve does not move (both measured in docs/results/multi-rate.md)."""
    if latent_gate:
        if latent_dim is None or not hasattr(decoder, "trunk"):
            raise ValueError("latent_gate needs the latent dimension and a decoder with a trunk "
                             "(the Bernoulli decoders of mr-mlp and mr-conv)")
        square = nn.Linear(latent_dim, latent_dim)
        with torch.no_grad():
            square.weight.copy_(torch.eye(latent_dim))
            square.bias.zero_()
        decoder.trunk = nn.Sequential(square, decoder.trunk)
    gated = gate_layers(decoder, "decoder", **gate_options)
    if not gate_output:   # unwrap the last gated layer, the one that makes the logits
        name = [n for n, m in gated.named_modules() if isinstance(m, BetaGated)][-1]
        parent, _, child = name.rpartition(".")
        holder = gated.get_submodule(parent)
        setattr(holder, child, getattr(holder, child).layer)
    return gated
