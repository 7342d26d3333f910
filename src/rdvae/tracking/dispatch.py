"""The trainer's side of tracking: metrics.jsonl in the trainer's thread, every tracker behind its
own queue and thread so that a slow or failing tracker never slows or stops the training.

A tracker's first exception (or a queue it let fill up) becomes one warning, raised from the
trainer's thread at its next call, and the tracker is left out from then on. With no --log nothing
but metrics.jsonl is written and nothing extra is computed.

The trackers' finish is a step of its own, recorded in trackers.json (rdvae.tracking.ids): "pending"
before summary.json says "done", then per tracker "done" once its finish returned, or "failed"; a
`--resume` of the done run finishes again those not done (`finish_unfinished`).
"""

from __future__ import annotations

import queue
import threading
import warnings
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..registry import EPOCH_FIGURES, LOGGERS
from ..rundir import RunDir
from .ids import DONE, FAILED, finish_record, record_finish, record_finish_pending, unfinished
from .jsonl import JsonlLogger

QUEUE_CAPACITY = 10_000     # calls a tracker may fall behind before it is left out
FINISH_SECONDS = 120.0      # how long the end of training waits for a tracker to finish its queue
FIGURE_EXAMPLES = 8         # inputs of the evaluation split in the epoch figures


class TrackerWarning(RuntimeWarning):
    """A tracker failed; the run goes on without it (the run directory holds everything)."""


class BackgroundLogger:
    """One tracker, called in order from its own daemon thread."""

    def __init__(self, name: str, logger, on_finished=None, run_dir: str = "RUN_DIR"):
        self.name, self.logger = name, logger
        self.on_finished, self.run_dir = on_finished, run_dir   # on_finished(name): in this thread
        self.every_step = bool(getattr(logger, "every_step", False))
        self.queue: queue.Queue = queue.Queue(QUEUE_CAPACITY)
        self.error: str | None = None
        self.warned = False
        self.finished = False   # whether its finish() returned without error
        self.thread = threading.Thread(target=self._work, name=f"rdvae-tracker-{name}", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error is not None:
                continue
            method, args = item
            try:
                getattr(self.logger, method)(*args)
                if method == "finish":
                    self.finished = True
                    if self.on_finished is not None:
                        self.on_finished(self.name)
            except Exception as err:  # noqa: BLE001 - any tracker failure is reported, never raised
                self.error = f"{method}: {type(err).__name__}: {' '.join(str(err).split())[:300]}"

    def report(self) -> None:
        """Warn (once, in the caller's thread) if the tracker has failed."""
        if self.error is not None and not self.warned:
            self.warned = True
            warnings.warn(f"tracker {self.name!r} failed and is left out for the rest of this run "
                          f"({self.error}); the run directory holds every figure, and its finish (final "
                          "metrics, artifacts, run status) is recorded as not done: once the run is done, "
                          f"`rdvae train --resume --out {self.run_dir}` completes it", TrackerWarning,
                          stacklevel=3)

    def submit(self, method: str, *args) -> None:
        self.report()
        if self.error is not None:
            return
        try:
            self.queue.put_nowait((method, args))
        except queue.Full:
            self.error = f"it fell {QUEUE_CAPACITY} calls behind"
            self.report()

    def close(self, timeout: float) -> None:
        try:
            self.queue.put(None, timeout=timeout)
        except queue.Full:
            pass
        self.thread.join(timeout)
        if self.thread.is_alive() and self.error is None:
            self.error = f"it had not finished {timeout:g} s after training ended"
        self.report()


def build_loggers(run_dir: Path, names, options: dict) -> list:
    """The registered loggers `names`, each built with the options of `options` that it takes."""
    loggers = []
    for name in names:
        accepted = LOGGERS.options(name)
        taken = options if "**" in accepted else {k: v for k, v in options.items() if k in accepted}
        loggers.append(LOGGERS.build(name, Path(run_dir), where=" (--log)", **taken))
    return loggers


def render(figure) -> np.ndarray:
    """A matplotlib figure as an RGB uint8 [H, W, 3] image (drawn with Agg, in this thread)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


class Tracking:
    """metrics.jsonl plus the trackers a config names (TrainConfig.log, log_options)."""

    def __init__(self, run: RunDir, config, names=None):
        self.config, self.run_dir = config, run.path
        self.names = list(config.log if names is None else names)   # names: some of config.log
        self.jsonl = JsonlLogger(run)
        loggers = build_loggers(run.path, self.names, config.log_options)
        self.trackers = [BackgroundLogger(name, logger, self._finished, run.path)
                         for name, logger in zip(self.names, loggers, strict=True)]

    def _finished(self, name: str) -> None:
        record_finish(self.run_dir, name, DONE)

    @property
    def active(self) -> bool:
        """Whether any tracker is on (then epochs also measure I_q, active units, effective beta)."""
        return bool(self.trackers)

    @property
    def every_step(self) -> bool:
        return any(t.every_step for t in self.trackers)

    def start(self, config: dict, step: int) -> None:
        self.jsonl.start(config, step)
        for tracker in self.trackers:
            tracker.submit("start", config, step)

    def log_step(self, step: int, scalars: dict) -> None:
        for tracker in self.trackers:
            if tracker.every_step:
                tracker.submit("log", step, scalars)

    def log_epoch(self, step: int, record: dict) -> None:
        self.jsonl.log(step, record)   # the run's record: its errors are the run's errors
        for tracker in self.trackers:
            tracker.submit("log", step, record)

    def figures_due(self, epoch: int) -> bool:
        every = self.config.log_figures_every
        return self.active and every > 0 and (epoch % every == 0 or epoch == self.config.epochs)

    def log_figures(self, step: int, model, x, seed: int) -> None:
        """Every registered epoch figure of `model` on the first inputs of `x`, to every tracker."""
        x = x[:FIGURE_EXAMPLES]
        for name, builder in EPOCH_FIGURES.items():
            image = render(builder(model, x, seed))
            for tracker in self.trackers:
                tracker.submit("log_figure", step, name, image)

    def finish_pending(self, step: int) -> None:
        """Record, before summary.json says "done", that every tracker's finish is still to come."""
        record_finish_pending(self.run_dir, self.names, step)

    def finish(self, summary: dict) -> None:
        trackers = self.trackers
        for tracker in trackers:
            tracker.submit("finish", summary)
        self.close()
        for tracker in trackers:   # failed, left out or still finishing: recorded as not done
            if not tracker.finished:
                record_finish(self.run_dir, tracker.name, FAILED)

    def close(self, timeout: float = FINISH_SECONDS) -> None:
        for tracker in self.trackers:
            tracker.close(timeout)
        self.trackers = []


def finish_unfinished(run: RunDir, config) -> list[str]:
    """The trackers of a done run whose finish (final metrics, artifacts, run status) a kill or a failure
    left undone (trackers.json), started again at the run's last step, so that each continues its own
    tracker run, and finished with summary.json; returns their names. Nothing is logged but the start
    and the finish; a tracker that cannot be built (its extra missing) is a warning."""
    names = unfinished(run.path, config.log)
    if not names:
        return []
    step = finish_record(run.path).get("step")
    if not isinstance(step, int):   # a record from before the run was done
        step = max((m.get("step", 0) for m in run.read_metrics()), default=0)
    try:
        tracking = Tracking(run, config, names)
    except ConfigError as err:
        warnings.warn(f"the finish of tracker(s) {', '.join(names)} of {run.path} is not done and cannot "
                      f"be completed here: {err}", TrackerWarning, stacklevel=2)
        return []
    tracking.start(config.to_dict(), step)
    tracking.finish({**run.read_summary(), "step": step})
    return names
