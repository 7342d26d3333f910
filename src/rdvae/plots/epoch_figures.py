"""The figures a run's trackers get every TrainConfig.log_figures_every epochs (rdvae.tracking):
reconstructions and samples of the model being trained.

Registered like a plugin's (the `rdvae.plugins` entry point of rdvae's own distribution), so that no
lower layer names the plots: the registry of epoch figures has no built-ins, and the trainer draws
whatever is registered. Importing this module is cheap; the grids (matplotlib) are imported when a
figure is drawn.
"""

from __future__ import annotations

import torch

from ..protocols import LatentVariableModel
from ..registry import register_epoch_figure


@register_epoch_figure("reconstructions")
def epoch_reconstructions(model: LatentVariableModel, x: torch.Tensor, seed: int):
    """Inputs of the evaluation split beside a sample and the average of d(x|z), z ~ e(z|x)."""
    from .grids import reconstruction_grid

    return reconstruction_grid([("model", model)], x, "Reconstructions", z_draws=1, seed=seed)


@register_epoch_figure("samples")
def epoch_samples(model: LatentVariableModel, x: torch.Tensor, seed: int):
    """As many draws z ~ m(z) as there are inputs, a sample and the average of d(x|z) each."""
    from .grids import samples_grid

    return samples_grid([("model", model)], "Samples z ~ m(z)", n=len(x), seed=seed)
