"""The contract of a latent-variable model: what every evaluator, objective and the trainer rely on.

Shapes (B examples, S draws of z, d = latent_dim, event_shape the shape of one example):

    encoder(x [B, *event_shape])  -> e(z|x): a torch Distribution, batch [B], event [d]
    decoder(z [N, d])             -> d(x|z): a torch Distribution, batch [N], event event_shape
                                     (N = S * B, sample-major: row s * B + b is draw s of example b)
    marginal(encoder)             -> m(z):   a torch Distribution, event [d] (the encoder is passed for
                                     marginals built from it, such as the VampPrior)

A distribution needs `log_prob`; the encoder's also `rsample` (or `sample` for discrete latents with a
gradient estimator), the marginal's `sample` (for samples) and the decoder's `mean` or `sample` (for
figures). Everything downstream consumes the per-example rate R = log e(z|x) - log m(z) and distortion
D = -log d(x|z) (nats) that `LatentVariableModel.forward` returns; rdvae.VAE implements it for any
encoder, decoder and marginal of the shapes above.

Capabilities are declared by the model's class, never detected by names: a `BetaConditioned` model
(rdvae.MultiRateVAE) can be conditioned on beta, which the multi-rate objective and `eval --betas` use.

`check_model_contract` checks these shapes on a few examples; the trainer runs it before the first step,
so that a component that breaks the contract is one line naming it, not a shape error deep inside.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .model import RateDistortion


@runtime_checkable
class LatentVariableModel(Protocol):
    """What evaluators, objectives and the trainer use of a model (rdvae.VAE is one)."""

    encoder: nn.Module
    decoder: nn.Module
    marginal: nn.Module

    def __call__(self, x: Tensor, samples: int = 1) -> RateDistortion: ...

    def marginal_distribution(self) -> Distribution: ...

    def distortion_of(self, x: Tensor, z: Tensor) -> Tensor: ...

    def log_importance_weights(self, x: Tensor, samples: int, q: Distribution | None = None,
                               p: Distribution | None = None) -> Tensor: ...


@runtime_checkable
class BetaConditioned(Protocol):
    """The multi-rate capability: a model whose every output can be conditioned on beta."""

    def conditioned_on(self, beta: Tensor | float) -> contextlib.AbstractContextManager: ...

    def set_beta_range(self, beta_min: float, beta_max: float) -> None: ...


def conditioned(model, beta: Tensor | float | None) -> contextlib.AbstractContextManager:
    """`model` conditioned on beta (a no-op for beta None); a ConfigError when the model does not
    have the capability."""
    if beta is None:
        return contextlib.nullcontext()
    return require_beta_conditioned(model, "evaluating at a given beta").conditioned_on(beta)


def require_beta_conditioned(model, what: str) -> BetaConditioned:
    if not isinstance(model, BetaConditioned):
        raise ConfigError(
            f"{what} needs a beta-conditioned model (rdvae.MultiRateVAE: a family registered with "
            f"model='multi-rate', such as mr-mlp or mr-conv); {type(model).__name__} is not one")
    return model


# ---------------------------------------------------------------------------------------- the check
CONTRACT_EXAMPLES = 4   # training examples the trainer checks the contract on


def check_model_contract(model, x: Tensor, event_shape: Sequence[int], family: str | None = None) -> None:
    """ConfigError when `model` breaks the contract above on the examples x [B, *event_shape]: one line
    naming every broken rule and its component (by its registered name when `family`, the family that
    built the model, is given; else by its class). The rules, B = len(x), d = the encoder's event size:

    - encoder(x) is a Distribution with batch [B] and event [d] (a Normal over [B, d] has event [],
      wrap it in Independent(..., 1)); its rsample (sample where it has none) gives [B, d], and its
      log_prob of those z's has shape [B];
    - the marginal has an integer `latent_dim` equal to d; marginal(encoder) is a Distribution with event
      [d] whose log_prob of the z's is finite, of shape [B];
    - decoder(z) is a Distribution with batch [B] and event event_shape; its log_prob(x) has shape [B];
    - model(x) returns per-example rate and distortion of shape [B] (checked where the parts pass).

    The check runs without gradients and in eval mode, and leaves the model's modes and buffers (e.g.
    BatchNorm statistics, step counters) and torch's random state as they were: a training run is the
    same with or without it."""
    if len(x) == 0:
        return
    check = _ContractCheck(model, x, tuple(event_shape), family)
    with _left_as_it_was(model, x.device), torch.no_grad():
        check.run()
    if check.problems:
        raise ConfigError("; ".join(check.problems) + " (the model contract of rdvae.protocols, checked on "
                          f"{len(x)} examples of the data)")


class _ContractCheck:
    """The rules of check_model_contract, one method per component; each broken rule is one problem."""

    def __init__(self, model, x: Tensor, event_shape: tuple[int, ...], family: str | None):
        self.model, self.x, self.event_shape, self.batch = model, x, event_shape, len(x)
        self.labels = _labels(model, family)
        self.problems: list[str] = []

    def fail(self, role: str, text: str) -> None:
        self.problems.append(f"{self.labels[role]}: {text}")

    def distribution(self, role: str, what: str, call) -> Distribution | None:
        """call()'s result when it is a Distribution; else (or when it raises) a problem and None."""
        try:
            value = call()
        except Exception as err:  # noqa: BLE001 - any failure of a component is a broken rule, reported
            self.fail(role, f"{what} failed: {_failure(err)}")
            return None
        if isinstance(value, Distribution):
            return value
        got = type(value).__name__
        if isinstance(value, Tensor):
            got = f"a tensor of shape {_shape(value.shape)}"
        self.fail(role, f"{what} must return a torch Distribution (e.g. Independent(Normal(loc, scale), 1)), "
                        f"got {got}")
        return None

    def run(self) -> None:
        parts = ("encoder", "decoder", "marginal")
        missing = [r for r in parts if not isinstance(getattr(self.model, r, None), nn.Module)]
        if missing:
            self.fail("model", f"a model needs encoder, decoder and marginal modules; it has no "
                               f"{', '.join(missing)} (build it as rdvae.VAE(encoder, decoder, marginal))")
            return
        d, z = self.encoder()
        d = self.marginal(d, z)
        if z is None and d is not None:
            z = torch.zeros(self.batch, d, device=self.x.device)   # the encoder failed: check the decoder too
        if z is not None:
            self.decoder(z)
        if not self.problems:
            self.forward()

    def encoder(self) -> tuple[int | None, Tensor | None]:
        """e(z|x): batch [B], event [d]; z ~ e(z|x) of shape [B, d] with log e(z|x) of shape [B]."""
        batch, x = self.batch, self.x
        q = self.distribution("encoder", f"e(z|x) = encoder(x) on x of shape {_shape(x.shape)}",
                              lambda: self.model.encoder(x))
        if q is None:
            return None, None
        q_batch, q_event = _shape(q.batch_shape), _shape(q.event_shape)
        if not q_event and len(q_batch) == 2 and q_batch[0] == batch:
            self.fail("encoder", f"e(z|x) has event shape () and batch shape {q_batch}, so each coordinate "
                                 f"of z is a distribution of its own; wrap it in Independent(..., 1) for "
                                 f"batch ({batch},) and event ({q_batch[1]},)")
            return None, None
        if len(q_event) != 1 or q_batch != (batch,):
            self.fail("encoder", f"e(z|x) has batch shape {q_batch} and event shape {q_event} for {batch} "
                                 f"examples; it needs batch ({batch},) and event (d,), d = latent_dim")
            return None, None
        d, how = q_event[0], "rsample" if q.has_rsample else "sample"
        try:
            z = getattr(q, how)()
            if _shape(z.shape) != (batch, d):
                self.fail("encoder", f"e(z|x).{how}() gives shape {_shape(z.shape)}, not ({batch}, {d})")
                return d, None
            log_q = q.log_prob(z)
        except Exception as err:  # noqa: BLE001
            self.fail("encoder", f"e(z|x).{how}() or its log_prob(z) failed: {_failure(err)}")
            return d, None
        if _shape(log_q.shape) != (batch,):
            self.fail("encoder", f"e(z|x).log_prob(z) has shape {_shape(log_q.shape)} for z of shape "
                                 f"({batch}, {d}); it needs ({batch},)")
        return d, z

    def marginal(self, d: int | None, z: Tensor | None) -> int | None:
        """An integer latent_dim equal to d; m(z) with event [d] and finite log m(z) of shape [B]. Returns
        the latent dimension where one is known."""
        latent_dim = getattr(self.model.marginal, "latent_dim", None)
        if not isinstance(latent_dim, int) or isinstance(latent_dim, bool) or latent_dim < 1:
            got = "none" if latent_dim is None else repr(latent_dim)
            self.fail("marginal", f"needs an integer latent_dim >= 1, the dimension of z (set "
                                  f"self.latent_dim = latent_dim in its __init__), got {got}")
            latent_dim = None
        elif d is not None and latent_dim != d:
            self.fail("marginal", f"latent_dim is {latent_dim} but e(z|x) of the {self.labels['encoder']} "
                                  f"has event shape ({d},); they must agree")
        d = d if d is not None else latent_dim
        p = self.distribution("marginal", "m(z) = marginal(encoder)",
                              lambda: self.model.marginal(self.model.encoder))
        if p is None or d is None:
            return d
        p_event = _shape(p.event_shape)
        if p_event != (d,):
            wrap = not p_event and _shape(p.batch_shape)[-1:] == (d,)
            self.fail("marginal", f"m(z) has event shape {p_event}, but z has shape ({d},)"
                                  + ("; wrap it in Independent(..., 1)" if wrap else ""))
            return d
        if z is None:
            return d
        try:
            log_p = p.log_prob(z)
        except Exception as err:  # noqa: BLE001
            self.fail("marginal", f"m(z).log_prob(z) failed for z of shape {_shape(z.shape)}: "
                                  f"{_failure(err)}")
            return d
        if _shape(log_p.shape) != (self.batch,):
            self.fail("marginal", f"m(z).log_prob(z) has shape {_shape(log_p.shape)} for z of shape "
                                  f"{_shape(z.shape)}; it needs ({self.batch},)")
        elif not bool(torch.isfinite(log_p).all()):
            self.fail("marginal", f"log m(z) is not finite for z drawn from e(z|x) of the "
                                  f"{self.labels['encoder']} (m(z) must give each such z a positive density)")
        return d

    def decoder(self, z: Tensor) -> None:
        """d(x|z): batch [B], event event_shape; log d(x|z) of shape [B]."""
        batch, shape = self.batch, self.event_shape
        dist = self.distribution("decoder", f"d(x|z) = decoder(z) on z of shape {_shape(z.shape)}",
                                 lambda: self.model.decoder(z))
        if dist is None:
            return
        x_batch, x_event = _shape(dist.batch_shape), _shape(dist.event_shape)
        if x_event != shape:
            wrap = ""
            if x_batch + x_event == (batch, *shape):   # a batch of per-coordinate distributions
                wrap = f"; wrap it in Independent(..., {len(shape)})"
            self.fail("decoder", f"d(x|z) has event shape {x_event} but the data's examples have shape "
                                 f"{shape}{wrap}")
            return
        if x_batch != (batch,):
            self.fail("decoder", f"d(x|z) has batch shape {x_batch} for z of shape {_shape(z.shape)}; it "
                                 f"needs ({batch},), one distribution per row of z")
            return
        try:
            log_d = dist.log_prob(self.x)
        except Exception as err:  # noqa: BLE001
            hint = ("; the data lie outside the support of d(x|z): binarize them (--binarize dynamic) or use "
                    "a decoder whose distribution fits them" if _outside_support(dist, self.x) else "")
            self.fail("decoder", f"d(x|z).log_prob(x) failed on x of shape {_shape(self.x.shape)}: "
                                 f"{_failure(err)}{hint}")
            return
        if _shape(log_d.shape) != (batch,):
            self.fail("decoder", f"d(x|z).log_prob(x) has shape {_shape(log_d.shape)} for {batch} examples; "
                                 f"it needs ({batch},)")

    def forward(self) -> None:
        """model(x): per-example rate and distortion."""
        try:
            out = self.model(self.x)
        except Exception as err:  # noqa: BLE001
            self.fail("model", f"model(x) failed: {_failure(err)}")
            return
        for name in ("rate", "distortion"):
            value = getattr(out, name, None)
            got = _shape(value.shape) if isinstance(value, Tensor) else type(value).__name__
            if got != (self.batch,):
                self.fail("model", f"model(x).{name} must be a tensor of shape ({self.batch},), one per "
                                   f"example (an rdvae.model.RateDistortion), got {got}")


def _labels(model, family: str | None) -> dict[str, str]:
    """How each part is named in the messages: "decoder 'tiny' (TinyDecoder)", or "decoder TinyDecoder"
    when no family names it."""
    names: dict[str, str] = {}
    if family is not None:
        # imported here: presets imports the model classes, which import this module
        from .presets import resolve_family

        try:
            fam = resolve_family(family)
            names = {"encoder": fam.encoder, "decoder": fam.decoder, "marginal": fam.marginal,
                     "model": fam.model}
        except ConfigError:
            pass
    labels = {}
    for role in ("encoder", "decoder", "marginal", "model"):
        cls = type(model if role == "model" else getattr(model, role, None)).__name__
        labels[role] = f"{role} {names[role]!r} ({cls})" if role in names else f"{role} {cls}"
    return labels


def _shape(size) -> tuple[int, ...]:
    return tuple(int(n) for n in size)


def _outside_support(dist: Distribution, x: Tensor) -> bool:
    try:
        return not bool(dist.support.check(x).all())
    except Exception:  # noqa: BLE001 - a distribution without a declared support
        return False


def _failure(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:300]}" if text else type(err).__name__


@contextlib.contextmanager
def _left_as_it_was(model: nn.Module, device: torch.device) -> Iterator[None]:
    """Eval mode, set on each module's flag (no train() override runs); on exit the modes, the buffers
    (objects and values) and torch's random state on the CPU and `device` are what they were."""
    modules = list(model.modules()) if isinstance(model, nn.Module) else []
    modes = [(m, m.training) for m in modules]
    buffers = [(m, name, b, b.detach().clone())
               for m in modules for name, b in m.named_buffers(recurse=False)]
    accelerator = None if device.type == "cpu" else device.type
    try:
        with torch.random.fork_rng([device] if accelerator else [], device_type=accelerator):
            for m in modules:
                m.training = False
            yield
    finally:
        for m, mode in modes:
            m.training = mode
        with torch.no_grad():
            for m, name, buffer, saved in buffers:
                setattr(m, name, buffer)
                buffer.copy_(saved)
