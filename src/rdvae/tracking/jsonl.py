"""The built-in logger: metrics.jsonl in the run directory, one line per epoch (the run's own record,
which resume, the plateau criterion and every reader rely on; written in the trainer's thread)."""

from __future__ import annotations

from ..rundir import RunDir


class JsonlLogger:
    every_step = False

    def __init__(self, run: RunDir):
        self.run = run

    def start(self, config: dict, step: int = 0) -> None:
        pass   # config.json is written by train(); a resumed run's lines past its checkpoint were dropped

    def log(self, step: int, scalars: dict) -> None:
        self.run.append_metrics(scalars)

    def log_figure(self, step: int, name: str, image) -> None:
        pass   # figures are the trackers' (`rdvae plot` and `rdvae report` draw them from the run)

    def finish(self, summary: dict) -> None:
        pass   # summary.json is written by the trainer
