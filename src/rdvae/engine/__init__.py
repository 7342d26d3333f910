"""The one engine under every training loop: `fit(plan, run, options, callbacks)`.

A plan (rdvae.engine.plan.Plan) says what one step is: its model, optimizers, batches and losses.
The loop (rdvae.engine.loop) owns the run folder's checkpoints, exact resume, the update guard,
precision and progress, and is the only module of rdvae that runs backward passes. Callbacks
(rdvae.engine.callbacks) do what happens around steps and epochs, each with checkpointed state.
"""

from . import distributed
from .callbacks import Callback, MetricsFile, ModelSelection, SkipLimits, TrainingDiverged
from .loop import FitOptions, Loop, fit
from .plan import Plan, Step

__all__ = ["Callback", "FitOptions", "Loop", "MetricsFile", "ModelSelection", "Plan", "SkipLimits", "Step",
           "TrainingDiverged", "distributed", "fit"]
