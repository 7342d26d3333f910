"""The run configuration: everything needed to rebuild and re-run a training run.

Flat on purpose, so that a sweep can vary any field by name and config.json reads at a glance.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import asdict, dataclass, field, fields

from ..device import PRECISIONS
from ..objectives import ObjectiveError, make_objective
from ..objectives.multi_rate import make_multi_rate_objective
from ..presets import UnknownFamilyError, resolve_family

LR_SCHEDULES = ("constant", "paper", "cosine")


class ConfigError(ValueError):
    """A run configuration that cannot be trained, with what to change."""


def nest_model_options(settings: dict) -> dict:
    """Flat settings (``model.X`` keys allowed, a ``model`` mapping merged) -> a TrainConfig dict,
    as the CLI's --set and a sweep's grid write them."""
    config, model = {}, {}
    for key, value in settings.items():
        if key == "model":
            if not isinstance(value, dict):
                raise ConfigError(f"model options must be a mapping, got {value!r}")
            model.update(value)
        elif key.startswith("model."):
            model[key[len("model."):]] = value
        else:
            config[key] = value
    if model:
        config["model"] = model
    return config


@dataclass
class TrainConfig:
    dataset: str = "digits"
    binarize: str | None = None        # grey-level data: None, "static", "dynamic", "threshold"
    family: str = "mlp"
    latent_dim: int | None = None      # None: the family's default
    model: dict = field(default_factory=dict)  # component options (hidden, activation, ...)
    beta: float = 1.0
    target_rate: float | None = None
    free_bits: float | None = None
    kl_anneal_steps: int = 0
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    lr_schedule: str = "constant"      # "paper": constant for half the epochs, then linear to 0;
    #                                    "cosine": 5% linear warm-up, then cosine decay to 0
    normalized_gradients: bool = False
    seed: int = 0
    precision: str = "fp32"
    device: str = "auto"
    eval_split: str = "valid"          # evaluated after every epoch (falls back to test if empty)
    final_split: str = "test"          # evaluated at the end, into summary.json
    eval_batch_size: int = 1000
    iw_samples: int = 0                # IW-NLL at the end of training (0: skip)
    skip_grad_norm: float = 1e6        # skip updates whose gradient norm exceeds this
    max_consecutive_skips: int = 50    # then stop with an error, last good checkpoint kept
    checkpoint_minutes: float = 10.0   # also checkpoint mid-epoch this often
    analytic_rate: bool = True
    multi_rate: bool = False           # Multi-Rate VAE: log beta ~ U[log beta_min, log beta_max] per example
    beta_min: float = 0.01
    beta_max: float = 10.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = [k for k in data if k not in known]
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, known, n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ConfigError(f"unknown config field(s): {', '.join(hints)}")
        return cls(**data).validated()

    def objective(self):
        if self.multi_rate:
            return make_multi_rate_objective(self.beta_min, self.beta_max, self.beta, self.target_rate,
                                             self.free_bits, self.kl_anneal_steps)
        return make_objective(self.beta, self.target_rate, self.free_bits, self.kl_anneal_steps)

    def validated(self) -> TrainConfig:
        """Check every field; raise ConfigError naming the problem and the fix."""
        def need(ok: bool, message: str):
            if not ok:
                raise ConfigError(message)

        for name in ("epochs", "batch_size", "eval_batch_size"):
            value = getattr(self, name)
            need(isinstance(value, int) and value >= 1, f"{name} must be an integer >= 1, got {value!r}")
        for name in ("iw_samples", "kl_anneal_steps", "max_consecutive_skips", "seed"):
            value = getattr(self, name)
            need(isinstance(value, int) and value >= 0, f"{name} must be an integer >= 0, got {value!r}")
        need(isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0,
             f"lr must be a positive number, got {self.lr!r}")
        need(self.lr_schedule in LR_SCHEDULES,
             f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        need(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        need(self.latent_dim is None or (isinstance(self.latent_dim, int) and self.latent_dim >= 1),
             f"latent_dim must be a positive integer, got {self.latent_dim!r}")
        for name in ("eval_split", "final_split"):
            need(getattr(self, name) in ("train", "valid", "test"),
                 f"{name} must be train, valid or test, got {getattr(self, name)!r}")
        need(isinstance(self.model, dict), f"model options must be a mapping, got {self.model!r}")
        need(self.skip_grad_norm > 0, f"skip_grad_norm must be > 0, got {self.skip_grad_norm!r}")
        try:
            preset = resolve_family(self.family)
            need(not self.multi_rate or preset.encoder.startswith("mr-"),
                 f"multi-rate training needs a beta-conditioned family (mr-mlp, mr-conv), got "
                 f"{self.family!r}")
            self.objective()
        except (UnknownFamilyError, ObjectiveError) as err:
            raise ConfigError(str(err)) from None
        return self
