"""Weights & Biases (pip install 'rdvae[wandb]'): config.json as the run's config, its tags (a
sweep's swept fields) as W&B tags and the sweep's name as its group, the same metrics and figures as
TensorBoard, summary.json as the run summary, model.safetensors as a model artifact.

WANDB_MODE=offline (or wandb_mode=offline) writes the run into RUN_DIR/wandb/offline-run-*/ for a later
`wandb sync`. A resumed run continues the same W&B run (id in RUN_DIR/trackers.json, resume="allow");
online, W&B ignores values logged at a step below the run's current one, so nothing is logged twice.
Offline, W&B does not resume: the resumed part is a second offline run with the same id, and the steps
between the checkpoint and the interruption appear in both."""

from __future__ import annotations

import secrets
from pathlib import Path

from ..registry import register_logger
from ..rundir import WEIGHTS
from .extras import require
from .ids import record_tracker_id, tracker_id
from .scalars import final_metrics, flat_params, tracker_scalars

TAG_CHARS = 64   # W&B's limit on a tag
INIT_SECONDS = 300   # W&B's service can take minutes to start on a loaded machine (its default is 90 s)


class WandbLogger:
    every_step = True

    def __init__(self, run_dir: Path, wandb_project: str = "rdvae", wandb_entity: str | None = None,
                 wandb_mode: str | None = None, wandb_group: str | None = None):
        self.run_dir = Path(run_dir)
        self.wandb = require("wandb", "wandb", "wandb")
        self.project, self.entity = wandb_project, wandb_entity
        self.mode, self.group = wandb_mode, wandb_group
        self.run = None

    def start(self, config: dict, step: int = 0) -> None:
        run_id = tracker_id(self.run_dir, "wandb")
        if run_id is None:
            run_id = secrets.token_hex(4)
            record_tracker_id(self.run_dir, "wandb", run_id)
        tags = config.get("log_tags") or {}
        self.run = self.wandb.init(
            project=self.project, entity=self.entity, mode=self.mode, dir=str(self.run_dir), id=run_id,
            resume="allow", name=self.run_dir.name, group=self.group or tags.get("sweep"),
            config=flat_params(config), tags=[f"{k}={v}"[:TAG_CHARS] for k, v in tags.items()],
            reinit="create_new",
            settings=self.wandb.Settings(silent=True, console="off", init_timeout=INIT_SECONDS))

    def log(self, step: int, scalars: dict) -> None:
        self.run.log(tracker_scalars(scalars), step=step)

    def log_figure(self, step: int, name: str, image) -> None:
        self.run.log({name: self.wandb.Image(image)}, step=step)

    def finish(self, summary: dict) -> None:
        self.run.summary.update({**final_metrics(summary), "status": summary.get("status")})
        if (self.run_dir / WEIGHTS).exists():
            artifact = self.wandb.Artifact(f"model-{self.run.id}", type="model")
            artifact.add_file(str(self.run_dir / WEIGHTS))
            self.run.log_artifact(artifact)
        self.run.finish(exit_code=0 if summary.get("status") == "done" else 1)


@register_logger("wandb", aliases=("wb",))
def wandb(run_dir, wandb_project: str = "rdvae", wandb_entity: str | None = None,
          wandb_mode: str | None = None, wandb_group: str | None = None) -> WandbLogger:
    """Weights & Biases (wandb_mode: online, offline or disabled; default $WANDB_MODE, else online)."""
    return WandbLogger(run_dir, wandb_project, wandb_entity, wandb_mode, wandb_group)
