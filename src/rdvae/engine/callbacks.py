"""Callbacks: what happens around the loop's steps and epochs, each with its own checkpointed state
(as Lightning's `state_dict`), none a branch in the loop.

Hooks (all optional; the loop calls a hook only on callbacks that override it, so an idle callback
costs nothing per step):

    on_fit_start(loop)                      before the first step (also of a resumed run)
    on_step(loop, figures)                  after every step; figures is the step's tensor of figures
                                            (on the device: reading it syncs, so read it rarely)
    on_skip(loop, step)                     for each skipped update, when the loop counts the skips
                                            (every few steps: the divergence rules)
    stops(loop) -> bool                     whether training ends before the epoch cap
    on_validation(loop, record)             after an epoch's validation, before the record is logged:
                                            add figures to it or decide on the epoch (ModelSelection)
    on_epoch_end(loop, record)              after the record was logged, before the checkpoint
    on_train_end(loop)                      after the last epoch, before the plan's summary: refuse
                                            the run (raise TrainingDiverged)
    on_fit_end(loop, summary)               before summary.json is written: add to it
    on_summary(loop, summary)               after summary.json is written
    on_exception(loop, error, summary)      the run stopped with an error: diverged (summary: what
                                            summary.json now says) or interrupted (summary None)
    state_dict() / load_state_dict(state)   JSON state, checkpointed with the run

A callback stops training by setting `loop.stop_reason`, and keeps the previous epoch's weights (its
checkpoint records the stop only) by setting `loop.keep_weights = False`.

Under torchrun (rdvae.engine.distributed) callbacks run on rank 0, which validates and writes the run
folder; after each epoch the other ranks load their state from rank 0's (so that `stops` agrees). A
callback whose `every_rank` is True also runs its step hooks on every rank (the divergence rules, which
see the same counters on every rank and so stop all ranks at the same step).
"""

from __future__ import annotations

import math


class TrainingDiverged(RuntimeError):
    """Training cannot go on: updates kept being skipped (non-finite loss or exploding gradient), or
    the model's figures are not finite. The run is recorded as diverged, never done."""


class Callback:
    """Base class: a name (its key in the checkpoint) and no-op state."""

    name = "callback"
    every_rank = False   # under torchrun: also run on_step / on_skip / on_train_end on the ranks beyond 0

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


HOOKS = ("on_fit_start", "on_step", "on_skip", "stops", "on_validation", "on_epoch_end", "on_train_end",
         "on_fit_end", "on_summary", "on_exception")


def overrides(callback: Callback, hook: str) -> bool:
    return callable(getattr(callback, hook, None))


class SkipLimits(Callback):
    """The divergence rules on skipped updates: more than `max_consecutive` skipped in a row stops the
    run at once (the last good checkpoint is kept); a run that skipped more than `max_fraction` of its
    updates ends diverged."""

    name = "skip_limits"
    every_rank = True

    def __init__(self, max_consecutive: int = 50, max_fraction: float = 1.0, advice: str = ""):
        self.max_consecutive, self.max_fraction = max_consecutive, max_fraction
        self.advice = advice or "lower the learning rate"

    def on_skip(self, loop, step: int) -> None:
        counters = loop.counters
        if counters["consecutive_skips"] > self.max_consecutive:
            raise TrainingDiverged(
                f"{counters['consecutive_skips']} consecutive updates skipped at step "
                f"{step} (non-finite loss or gradient norm above "
                f"{loop.skip_grad_norm:g}); the last good checkpoint in {loop.where} is kept. "
                f"{self.advice[:1].upper()}{self.advice[1:]}.")

    def on_train_end(self, loop) -> None:
        counters = loop.counters
        fraction = counters["skipped"] / max(counters["step"], 1)
        if fraction > self.max_fraction:
            raise TrainingDiverged(
                f"{counters['skipped']} of {counters['step']} updates were skipped ({fraction:.0%}, more "
                f"than max_skipped_fraction {self.max_fraction:g}): non-finite losses or gradient norms "
                f"above {loop.skip_grad_norm:g}. The checkpoint in {loop.where} is kept; {self.advice}")


class ModelSelection(Callback):
    """Keep the checkpoint of the epoch before `monitor` got worse, and stop there.

    mode "min": an epoch whose value is more than (1 + tolerance) times the previous epoch's (the
    GAN's FID rising: "select a checkpoint one epoch before mode collapse") is not saved; the run
    stops with `reason` and selected_epoch names the epoch whose weights were kept. mode "max": the
    same with "less than (1 - tolerance) times"."""

    name = "model_selection"

    def __init__(self, monitor: str, mode: str = "min", tolerance: float = 0.0, reason: str = ""):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be min or max, got {mode!r}")
        self.monitor, self.mode, self.tolerance = monitor, mode, tolerance
        self.reason = reason or f"{monitor} got worse"
        self.values: list[float] = []
        self.selected_epoch: int | None = None

    def worse(self, value: float, previous: float) -> bool:
        if self.mode == "min":
            return value > (1 + self.tolerance) * previous
        return value < (1 - self.tolerance) * previous

    def on_validation(self, loop, record: dict) -> None:
        value = record[self.monitor]
        previous = self.values[-1] if self.values else None
        worse = previous is not None and (not math.isfinite(value) or self.worse(value, previous))
        self.values.append(value)
        record["kept"] = not worse
        if worse:   # this epoch's weights are not saved: the files keep the previous epoch's
            self.selected_epoch = loop.counters["epoch"] - 1
            loop.stop_reason, loop.keep_weights = self.reason, False
        else:
            self.selected_epoch = loop.counters["epoch"]

    def state_dict(self) -> dict:
        return {"values": self.values, "selected_epoch": self.selected_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.values = list(state.get("values", []))
        self.selected_epoch = state.get("selected_epoch")


class MetricsFile(Callback):
    """Append each epoch's record to the run folder's metrics.jsonl."""

    name = "metrics_file"

    def on_epoch_end(self, loop, record: dict) -> None:
        if loop.run is not None:
            loop.run.append_metrics(record)
