"""rdvae: variational autoencoders judged by rate and distortion.

The names a user's own code needs, importable from the top level:

    from rdvae import VAE, register_encoder, register_decoder, register_marginal, register_family
    from rdvae import TrainConfig, load_run, evaluate_model, load_dataset, Dataset
    from rdvae.train import train          # (rdvae.train is the package; the function lives in it)

See help(rdvae.VAE) for the model contract (shapes of e(z|x), d(x|z), m(z)) and rdvae.registry for
registering components in a plugin.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> module it lives in (imported on first use, so `import rdvae` stays light)
_EXPORTS = {
    "VAE": "rdvae.model", "MultiRateVAE": "rdvae.model", "RateDistortion": "rdvae.model",
    "LatentVariableModel": "rdvae.protocols", "BetaConditioned": "rdvae.protocols",
    "register_encoder": "rdvae.registry", "register_decoder": "rdvae.registry",
    "register_marginal": "rdvae.registry", "register_model": "rdvae.registry",
    "register_dataset": "rdvae.registry", "register_objective": "rdvae.registry",
    "register_logger": "rdvae.registry", "register_epoch_figure": "rdvae.registry",
    "register_study": "rdvae.registry",
    "register_executor": "rdvae.sweep.executors", "register_optimizer": "rdvae.engine.optimizers",
    "fit": "rdvae.engine", "Plan": "rdvae.engine", "Step": "rdvae.engine", "Callback": "rdvae.engine",
    "FitOptions": "rdvae.engine",
    "Logger": "rdvae.tracking",
    "register_family": "rdvae.presets", "build_model": "rdvae.presets", "Family": "rdvae.presets",
    "ConfigError": "rdvae.errors",
    "TrainConfig": "rdvae.train", "load_run": "rdvae.train",
    "evaluate_model": "rdvae.evaluate", "iw_log_likelihood": "rdvae.evaluate",
    "register_measure": "rdvae.evaluate", "evaluate_run": "rdvae.evaluate",
    "elbo_surgery": "rdvae.evaluate",
    "load_dataset": "rdvae.data", "Dataset": "rdvae.data", "DataError": "rdvae.data",
    "Objective": "rdvae.objectives", "RateDistortionObjective": "rdvae.objectives",
    "StepResult": "rdvae.objectives",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'rdvae' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
