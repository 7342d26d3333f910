"""Training: configuration, the loop, checkpoints, schedules, and reloading runs."""

from ..engine.checkpoint import load_weights, save_weights
from .config import ConfigError, TrainConfig
from .loop import TrainingDiverged, build_for_config, final_evaluation, train
from .restore import TrainedRun, load_run

__all__ = ["ConfigError", "TrainConfig", "TrainedRun", "TrainingDiverged", "build_for_config",
           "final_evaluation", "load_run", "load_weights", "save_weights", "train"]
