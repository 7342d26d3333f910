"""A sweep's runs report to the sweep's trackers: each run's swept fields as its tags (MLflow tags and
params, W&B tags, TensorBoard hparams), the sweep's name as the MLflow experiment and the W&B group,
and MLflow's default store in SWEEP_DIR/mlruns, so that the runs compare side by side. Set in the
config each run trains with, so that a Ray worker logs exactly as a local one."""

from __future__ import annotations

import os
from pathlib import Path

from ..registry import LOGGERS
from ..train import TrainConfig


def sweep_tracking(config: TrainConfig, sweep_dir: Path, swept: dict) -> TrainConfig:
    """`config` with the sweep's tags and tracker defaults (options the user set are kept)."""
    if not config.log:
        return config
    sweep_dir = Path(sweep_dir).resolve()
    defaults = {"mlflow_experiment": sweep_dir.name, "wandb_group": sweep_dir.name}
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        defaults["mlflow_uri"] = (sweep_dir / "mlruns").as_uri()
    taken = {k for name in config.log for k in LOGGERS.options(name)}
    options = {**{k: v for k, v in defaults.items() if k in taken}, **config.log_options}
    tags = {**swept, "sweep": sweep_dir.name, **config.log_tags}
    return TrainConfig.from_dict({**config.to_dict(), "log_options": options, "log_tags": tags})
