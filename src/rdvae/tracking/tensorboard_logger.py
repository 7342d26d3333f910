"""TensorBoard (pip install 'rdvae[tensorboard]'): event files in RUN_DIR/tensorboard, written with
torch.utils.tensorboard. `tensorboard --logdir SWEEP_DIR` shows every run of a sweep; the final
summary is written as hparams + metrics, so the HParams tab compares the runs by their swept fields.

A resumed run opens a new event file with purge_step = the checkpoint's step + 1: TensorBoard's readers
then drop what the interrupted process logged past the checkpoint, so no step appears twice. A finish
done again (`--resume` of a done run whose finish a kill cut short) starts at the last step, so nothing
is purged, and writes only the final figures and hparams that the earlier event files do not hold."""

from __future__ import annotations

import json
from pathlib import Path

from ..registry import register_logger
from .extras import require
from .scalars import final_metrics, flat_params, tracker_scalars

TENSORBOARD_FOLDER = "tensorboard"
HPARAMS_TAGS = "_hparams_/"


def logged_at_finish(log_dir: Path, step: int) -> set[str]:
    """The final figures' tags at `step` and the hparams tags that the interrupted process's event file
    holds (the newest but this writer's own, just opened)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    tags: set[str] = set()
    for path in sorted(Path(log_dir).glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime)[-2:]:
        for event in EventFileLoader(str(path)).Load():
            if event.HasField("summary"):
                tags.update(value.tag for value in event.summary.value if value.tag.startswith(HPARAMS_TAGS)
                            or (value.tag.startswith("final/") and event.step == step))
    return tags


class TensorBoardLogger:
    every_step = True

    def __init__(self, run_dir: Path, tensorboard_dir: str | None = None):
        self.log_dir = Path(tensorboard_dir) if tensorboard_dir else Path(run_dir) / TENSORBOARD_FOLDER
        self.writer_class = require("torch.utils.tensorboard", "tensorboard", "tensorboard").SummaryWriter
        self.writer = None
        self.params: dict = {}
        self.start_step = 0

    def start(self, config: dict, step: int = 0) -> None:
        # steps up to the checkpoint's were logged before it; later ones are logged again now
        self.writer = self.writer_class(str(self.log_dir), purge_step=step + 1)
        self.start_step = step
        self.params = flat_params(config)
        self.writer.add_text("config", "```\n" + json.dumps(config, indent=2, sort_keys=True) + "\n```", step)

    def log(self, step: int, scalars: dict) -> None:
        for tag, value in tracker_scalars(scalars).items():
            self.writer.add_scalar(tag, value, step)

    def log_figure(self, step: int, name: str, image) -> None:
        self.writer.add_image(name, image, step, dataformats="HWC")

    def finish(self, summary: dict) -> None:
        from torch.utils.tensorboard.summary import hparams

        metrics = final_metrics(summary)
        step = int(summary.get("step") or 0)
        # started at the last step: a finish done again may find what an interrupted one wrote
        logged = logged_at_finish(self.log_dir, step) if step and step == self.start_step else set()
        if not any(tag.startswith(HPARAMS_TAGS) for tag in logged):
            # hparams in this run's own event file (SummaryWriter.add_hparams would open a sub-run)
            experiment, start, end = hparams(self.params, metrics)
            for event in (experiment, start, end):
                self.writer.file_writer.add_summary(event)
        for tag, value in metrics.items():
            if tag not in logged:
                self.writer.add_scalar(tag, value, step)
        self.writer.close()


@register_logger("tensorboard", aliases=("tb",))
def tensorboard(run_dir, tensorboard_dir: str | None = None) -> TensorBoardLogger:
    """TensorBoard event files (tensorboard_dir: where; default RUN_DIR/tensorboard)."""
    return TensorBoardLogger(run_dir, tensorboard_dir)
