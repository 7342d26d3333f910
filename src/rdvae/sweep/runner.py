"""Running a sweep: plan what is left, hand it to an executor, record each run's row.

Re-running a sweep directory skips finished runs (their row is kept as is), resumes runs
whose directory holds a checkpoint, retries failed ones, and records a run that finished
before its row could be written without training it again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from ..plugins import consent_state
from ..rundir import RunDir, folder_lock
from ..train import ConfigError, TrainConfig
from ..train.config import nest_model_options
from .executors import CONTEXT, EXECUTORS
from .results import ResultsTable, as_stored, config_row, summary_row
from .spec import RUNS_FOLDER, SweepError, SweepSpec, resolve_spec
from .task import Task
from .tracking import sweep_tracking


@dataclass
class SweepReport:
    """What one invocation did, and the table it left."""

    out: Path
    rows: list[dict]
    skipped: list[str] = field(default_factory=list)    # already done, untouched
    recorded: list[str] = field(default_factory=list)   # done on disk, row (re)written, not trained
    trained: list[str] = field(default_factory=list)    # trained or resumed now
    failed: list[str] = field(default_factory=list)     # failed now (config error or exception)

    def to_dict(self) -> dict:
        return {"out": str(self.out), "runs": len(self.rows), "skipped": self.skipped,
                "recorded": self.recorded, "trained": self.trained, "failed": self.failed,
                "results": str(self.out / "results.csv")}


def _swept_values(spec: SweepSpec, index: int) -> dict:
    return dict(spec.points[index])


def finish_trackers(run_dir: Path, config: TrainConfig) -> None:
    """A done run whose trackers' finish a kill left undone (trackers.json) is finished, as --resume
    would; its result stays as it is, and what stops the finish (the run locked by another command,
    its plugin not allowed, a tracker down) is a warning: the sweep goes on."""
    if not config.log:
        return
    import warnings

    from ..data import DataError
    from ..tracking.ids import unfinished
    from ..train import train

    if unfinished(run_dir, config.log):
        try:
            train(config, run_dir, resume=True, progress=False)
        except (ConfigError, DataError, OSError) as err:
            warnings.warn(f"the trackers' finish of {run_dir} is not done ({err}); `rdvae train --resume "
                          f"--out {run_dir}` completes it", RuntimeWarning, stacklevel=2)


# run_sweep's shorthands for the options of the built-in executors (None: not given)
SHORTHANDS = ("workers", "address", "num_cpus", "num_gpus", "total_cpus")


def executor_call(executor: str, options: dict) -> Callable:
    """The registered executor `executor` with its `options` checked (known, of the kind of their
    default): a function of (tasks, on_result, **context). ConfigError naming what is wrong."""
    run = EXECUTORS[executor]   # unknown: a ConfigError with the registered names
    name = EXECUTORS.canonical(executor)
    accepted = EXECUTORS.options(name)
    hidden = [k for k in options if k in CONTEXT]
    if hidden:
        raise ConfigError(f"executor option(s) {', '.join(hidden)} are the sweep's own (--threads, "
                          "progress), not options to set")
    EXECUTORS.check_values(name, options)

    def call(tasks, on_result, **context):
        taken = {k: v for k, v in context.items() if k in accepted or "**" in accepted}
        return run(tasks, on_result, **taken, **options)

    return call


def run_sweep(out: str | Path, spec: SweepSpec | None = None, executor: str = "local",
              workers: int | None = None, address: str | None = None, num_cpus: float | None = None,
              num_gpus: float | None = None, total_cpus: int | None = None, progress: bool = True,
              threads: int | None = None, executor_options: dict | None = None) -> SweepReport:
    """Run (or continue) the sweep in directory `out`; return what was done and the rows.

    `spec` is saved as out/sweep.json on first use; None continues the saved sweep. `executor` is a
    registered executor (rdvae.sweep.executors: "local", a process pool or this process, and "ray",
    or a plugin's) called with `executor_options`; `workers`, `address`, `num_cpus`, `num_gpus` and
    `total_cpus` are shorthands for options of that name. `threads`: the torch threads the sweep may
    use (None: the free cores).
    """
    shorthands = {k: v for k, v in zip(SHORTHANDS, (workers, address, num_cpus, num_gpus, total_cpus),
                                       strict=True) if v is not None}
    run_tasks = executor_call(executor, {**shorthands, **(executor_options or {})})
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SweepError(f"{out} is a file, not a sweep directory; choose another --out")
    if (out / RUNS_FOLDER).is_symlink():
        raise SweepError(f"{out / RUNS_FOLDER} is a symbolic link; a sweep writes its runs only inside its "
                         "own folder")
    with folder_lock(out, "rdvae sweep"):   # one sweep process at a time; its workers lock their runs
        return _run_sweep(out, spec, run_tasks, progress, threads)


def _run_sweep(out: Path, spec: SweepSpec | None, run_tasks: Callable, progress: bool,
               threads: int | None) -> SweepReport:
    spec = resolve_spec(out, spec)
    table = ResultsTable(out)
    order = [f"{RUNS_FOLDER}/{name}" for name in spec.names]
    swept = spec.swept_fields
    report = SweepReport(out=out, rows=[])

    def make_row(index: int, status: str, summary: dict | None = None, error: str | None = None,
                 config: dict | None = None) -> dict:
        row = {"run_dir": order[index], "status": status, **_swept_values(spec, index)}
        if config is not None:
            row.update(config_row(config))
        if summary is not None:
            row.update(summary_row(summary))
        row["error"] = error
        return row

    def record(index: int, *args, **kwargs) -> None:
        table.upsert(make_row(index, *args, **kwargs), order=order, swept=swept)

    rows = table.by_run()
    tasks: list[Task] = []
    for index, name in enumerate(spec.names):
        run_dir = out / order[index]
        summary = RunDir(run_dir).read_summary()
        row = rows.get(order[index])
        if run_dir.is_symlink() or (run_dir.exists() and not run_dir.is_dir()):
            what = "a symbolic link" if run_dir.is_symlink() else "not a folder"
            record(index, "failed", error=f"ConfigError: {run_dir} is {what}; a sweep trains its runs only "
                                          "in folders of its own (remove it to train the run)")
            report.failed.append(order[index])
            continue
        try:
            config = spec.config(index)
        except ConfigError as err:
            given = nest_model_options(spec.settings(index))
            defaults = TrainConfig().to_dict()
            record(index, "failed", error=f"ConfigError: {err}", config={**defaults, **given})
            report.failed.append(order[index])
            continue
        if summary.get("status") == "done":
            finish_trackers(run_dir, sweep_tracking(config, out, _swept_values(spec, index)))
            fresh = make_row(index, "done", summary=summary, config=config.to_dict())
            if row is None or as_stored(fresh) != {k: row.get(k) for k in fresh}:
                # no row yet (killed before it was written), a failed one, or a summary updated
                # since (e.g. `rdvae eval RUN --iw-samples K`): rewrite it, train nothing
                table.upsert(fresh, order=order, swept=swept)
                report.recorded.append(order[index])
            else:
                report.skipped.append(order[index])
            continue
        config = sweep_tracking(config, out, _swept_values(spec, index))
        tasks.append(Task(index=index, name=name, run_dir=str(run_dir.resolve()), config=config.to_dict(),
                          consent=consent_state()))

    bar = tqdm(total=len(spec.names), initial=len(spec.names) - len(tasks), disable=not progress,
               unit="run", desc=f"sweep {out.name}", dynamic_ncols=True)

    def on_result(task: Task, outcome: dict) -> None:
        key = order[task.index]
        record(task.index, outcome["status"], summary=outcome["summary"], error=outcome["error"],
               config=task.config)
        if outcome["status"] != "done":
            report.failed.append(key)
        else:  # a run finished by another process while this one waited for it is only recorded
            (report.trained if outcome.get("trained", True) else report.recorded).append(key)
        if outcome["status"] == "done":
            s = outcome["summary"]
            bar.set_postfix_str(f"{task.name}: R={s['rate']:.2f} D={s['distortion']:.2f}", refresh=False)
        else:
            bar.set_postfix_str(f"{task.name}: failed", refresh=False)
        bar.update(1)

    def on_step(task: Task, counters: dict) -> None:
        if counters["step"] % 20 == 0:
            bar.set_postfix_str(f"{task.name} epoch {counters['epoch'] + 1} step {counters['step']}")

    try:
        if tasks:
            run_tasks(tasks, on_result, on_step=on_step if progress else None, threads=threads)
    finally:
        bar.close()
    by_run = table.by_run()
    report.rows = [by_run[key] for key in order if key in by_run]
    return report


__all__ = ["SweepError", "SweepReport", "run_sweep"]
