"""The logger protocol: what the trainer tells a tracker, and when.

    start(config, step)          once, before the first update; config: config.json's dict (with
                                 `log_tags`, e.g. a sweep's swept fields); step > 0: resumed there
    log(step, scalars)           after every epoch, the metrics.jsonl record (flat name -> value);
                                 a logger with `every_step = True` also gets the training loss, R and
                                 D every `log_every_steps` steps as {"train/loss", "train/rate",
                                 "train/distortion"}
    log_figure(step, name, image) every `log_figures_every` epochs: an RGB image, uint8 [H, W, 3]
                                 (a registered epoch figure, rendered in the trainer's thread)
    finish(summary)              once, with summary.json's dict (status "done" or "diverged")

Every call happens in one thread per logger, never in the trainer's; the first exception a tracker
raises is reported as one warning and the tracker is then left out for the rest of the run (the run
directory still holds everything). Register a logger with `rdvae.register_logger(name, builder)`,
builder(run_dir, **options) -> Logger; its keyword options are config `log_options.*`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Logger(Protocol):
    every_step: bool   # whether log() also receives the per-step training figures

    def start(self, config: dict, step: int = 0) -> None: ...

    def log(self, step: int, scalars: dict[str, Any]) -> None: ...

    def log_figure(self, step: int, name: str, image: np.ndarray) -> None: ...

    def finish(self, summary: dict) -> None: ...
