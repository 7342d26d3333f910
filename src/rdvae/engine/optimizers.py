"""Optimizers: a registry of builder(params, lr, **options) -> torch.optim.Optimizer.

TrainConfig.optimizer names one (default "adam", as rdvae has always trained) and
TrainConfig.optimizer_options holds its options (`--set optimizer_options.betas=[0.5,0.999]`). The
built-ins register through the same `register_optimizer` a user's plugin calls:

    from rdvae import register_optimizer

    @register_optimizer("lion")
    def lion(params, lr, betas=(0.9, 0.99)):
        return MyLion(params, lr=lr, betas=tuple(betas))

A plan with several optimizers (rdvae.engine) builds each through this registry too. The loop sets
each group's learning rate every step (the schedule's factor times the base lr) and, where an
optimizer supports torch's `found_inf` flag (the fused Adam kernels), skips a bad update on the
device without waiting for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from ..registry import Registry

OPTIMIZERS = Registry("optimizer", ("rdvae.engine.optimizers",), leading=2)


def register_optimizer(name: str, builder: Callable | None = None, *, replace: bool = False, aliases=()):
    """Register an optimizer builder(params, lr, **options) -> torch.optim.Optimizer; options are its
    keyword parameters (config `optimizer_options.*`)."""
    return OPTIMIZERS.register(name, builder, replace=replace, aliases=aliases)


def _pair(name: str, values) -> tuple[float, float]:
    if len(values) != 2 or not all(0 <= v < 1 for v in values):
        raise ValueError(f"{name} must be two numbers in [0, 1), got {list(values)!r}")
    return float(values[0]), float(values[1])


def _non_negative(name: str, value: float) -> float:
    if not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


def _adam_kind(cls, params: Iterable, lr: float, betas, eps: float, weight_decay: float, fused: bool):
    """cls (Adam or AdamW) with checked options; with the fused kernel where torch has one for the
    device (CPU and CUDA in torch >= 2.4): the same update rule in fewer passes over memory, and a
    skipped update decided on the device."""
    options = {"lr": lr, "betas": _pair("betas", betas), "eps": _non_negative("eps", eps),
               "weight_decay": _non_negative("weight_decay", weight_decay)}
    params = list(params)
    if fused:
        try:
            return cls(params, fused=True, **options)
        except (RuntimeError, TypeError):   # no fused kernel for these tensors
            pass
    return cls(params, **options)


@register_optimizer("adam")
def adam(params: Iterable, lr: float, betas: list = (0.9, 0.999), eps: float = 1e-8,
         weight_decay: float = 0.0, fused: bool = True) -> torch.optim.Adam:
    """Adam (Kingma & Ba 2015), the fused kernel where torch has one."""
    return _adam_kind(torch.optim.Adam, params, lr, betas, eps, weight_decay, fused)


@register_optimizer("adamw")
def adamw(params: Iterable, lr: float, betas: list = (0.9, 0.999), eps: float = 1e-8,
          weight_decay: float = 0.01, fused: bool = True) -> torch.optim.AdamW:
    """AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay."""
    return _adam_kind(torch.optim.AdamW, params, lr, betas, eps, weight_decay, fused)


@register_optimizer("sgd")
def sgd(params: Iterable, lr: float, momentum: float = 0.0, nesterov: bool = False,
        weight_decay: float = 0.0) -> torch.optim.SGD:
    """Stochastic gradient descent, with optional (Nesterov) momentum."""
    if nesterov and momentum <= 0:
        raise ValueError("nesterov=true needs momentum > 0")
    return torch.optim.SGD(list(params), lr=lr, momentum=_non_negative("momentum", momentum),
                           nesterov=nesterov, weight_decay=_non_negative("weight_decay", weight_decay))


@register_optimizer("rmsprop")
def rmsprop(params: Iterable, lr: float, alpha: float = 0.99, eps: float = 1e-8, momentum: float = 0.0,
            weight_decay: float = 0.0) -> torch.optim.RMSprop:
    """RMSprop (Tieleman & Hinton 2012)."""
    return torch.optim.RMSprop(list(params), lr=lr, alpha=_non_negative("alpha", alpha),
                               eps=_non_negative("eps", eps), momentum=_non_negative("momentum", momentum),
                               weight_decay=_non_negative("weight_decay", weight_decay))


def build_optimizer(name: str, params: Iterable, lr: float, options: dict | None = None,
                    where: str = "") -> torch.optim.Optimizer:
    """The registered optimizer `name` over `params` (a list of tensors or of parameter groups)."""
    return OPTIMIZERS.build(name, params, lr, where=where, **(options or {}))
