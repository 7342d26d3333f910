"""The one objective interface the trainer uses, and how a run's config picks one.

An objective takes the model and a batch and returns the loss with the per-example rate and
distortion it measured (the trainer logs those):

    class Objective:
        def prepare(self, model, train_x): ...        # once, before training (may check capabilities)
        def __call__(self, model, x, step) -> StepResult(loss, rate [B], distortion [B])
        def describe(self) -> str

Objectives of (R, D) alone subclass `RateDistortionObjective` and write only `loss(rate, distortion,
step)`; objectives that need more of the model (per-example betas, the posterior itself) override
`__call__` and use the model through its contract (rdvae.protocols). Objectives are registered by name
(rdvae.registry.register_objective); a builder's parameters are its options, taken from the config
fields of the same name (beta, target_rate, free_bits, kl_anneal_steps, beta_min, beta_max) and from
`objective_options`.
"""

from __future__ import annotations

import inspect
import math
import sys
from dataclasses import dataclass

import torch
from torch import Tensor

from ..data.streaming import collate_examples
from ..errors import ConfigError, unknown_names
from ..registry import OBJECTIVES


class ObjectiveError(ConfigError):
    """An invalid objective setting, with what was given and what is allowed."""


@dataclass
class StepResult:
    """One training step's loss and the per-example figures behind it ([B] nats). `terms`: other
    figures of the step the objective wants logged (a scalar or [B] each, e.g. the MMD of wae-mmd);
    the trainer records the epoch's example-weighted mean of each as `train_<name>` in metrics.jsonl
    (names other than loss, rate and distortion)."""

    loss: Tensor
    rate: Tensor
    distortion: Tensor
    terms: dict[str, Tensor] | None = None


class Objective:
    """Base of every objective (see the module docstring). `requires`: a capability (a protocol of
    rdvae.protocols) the model class must declare, checked before training."""

    requires: type | None = None

    def prepare(self, model, train_x: Tensor) -> None:
        """Called once before training with the model and the training split."""

    def __call__(self, model, x: Tensor, step: int = 0) -> StepResult:
        raise NotImplementedError

    def describe(self) -> str:
        return type(self).__name__

    def validation_loss(self, rate: float, distortion: float) -> float:
        """The objective at a split's mean rate and distortion, after any warm-up: what a plateau
        criterion watches. Here -ELBO = R + D; objectives of (R, D) alone use their own loss."""
        return rate + distortion


class RateDistortionObjective(Objective):
    """An objective of the per-example rate and distortion only: implement `loss`."""

    def loss(self, rate: Tensor, distortion: Tensor, step: int = 0) -> Tensor:
        raise NotImplementedError

    def validation_loss(self, rate: float, distortion: float) -> float:
        return float(self.loss(torch.tensor([float(rate)]), torch.tensor([float(distortion)]), sys.maxsize))

    def __call__(self, model, x: Tensor, step: int = 0) -> StepResult:
        out = model(x)
        return StepResult(self.loss(out.rate.float(), out.distortion.float(), step), out.rate, out.distortion)


def training_head(train_x, n: int = 2) -> Tensor:
    """The first n training examples as one batch (a tensor split, or a streamed one), for the
    checks `prepare` makes on the model's distributions."""
    if isinstance(train_x, Tensor):
        return train_x[:n]
    return collate_examples([train_x[i] for i in range(min(n, len(train_x)))])


def choice(name: str, value, allowed: tuple[str, ...]) -> str:
    """`value` when it is one of `allowed`, else an ObjectiveError naming the field."""
    if not isinstance(value, str) or value not in allowed:
        raise ObjectiveError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def number(name: str, value, low: float = 0.0, strict: bool = True) -> float:
    """`value` as a finite float > low (or >= low), else an ObjectiveError naming the field."""
    what = "a positive number" if strict and low == 0 else f"a number {'>' if strict else '>='} {low:g}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ObjectiveError(f"{name} must be {what}, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or (value <= low if strict else value < low):
        raise ObjectiveError(f"{name} must be {what} (finite), got {value!r}")
    return value


# config fields that are objective options (their TrainConfig defaults live in train.config)
def build_objective(name: str, fields: dict, defaults: dict, options: dict | None = None) -> Objective:
    """The registered objective `name`, its parameters taken from the config `fields` that it names
    and from `options` (objective_options). A field set away from its default that the objective does
    not take is an error (it would be silently ignored), as is an unknown option."""
    accepted = OBJECTIVES.options(name)
    kwargs = {}
    unused = []
    for field, value in fields.items():
        if field in accepted:
            kwargs[field] = value
        elif value != defaults[field]:
            unused.append(f"{field}={value!r}")
    if unused:
        takes = ", ".join(k for k in accepted if k != "**") or "no options"
        raise ObjectiveError(f"objective {name!r} does not use {', '.join(unused)} (it takes {takes}); "
                             f"drop them, or choose another objective ({', '.join(OBJECTIVES.names())})")
    options = dict(options or {})
    clash = [k for k in options if k in fields]
    if clash:
        raise ObjectiveError(f"objective_options {clash} are config fields: set them as such (e.g. --beta)")
    if "**" not in accepted:
        unknown = [k for k in options if k not in accepted]
        if unknown:
            raise unknown_names("objective option(s)", unknown, [k for k in accepted if k not in fields],
                                f" of objective {name!r}")
    given = {**kwargs, **options}
    missing = [k for k, v in accepted.items() if v is inspect.Parameter.empty and k not in given]
    if missing:
        raise ObjectiveError(f"objective {name!r} needs {', '.join(missing)}")
    return OBJECTIVES.build(name, **kwargs, **options)
