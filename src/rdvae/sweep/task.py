"""One grid point as a unit of work, and the function every executor runs for it.

`execute` trains (or resumes, or just reads back) the run of a task and never raises: any
failure comes back as an outcome with status "failed" and the error message, so one bad
point never stops a sweep; the full traceback goes to the run folder's error.log.
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..rundir import RunDir, write_text
from .results import locked

RUN_LOCK = ".sweep.lock"
ERROR_LOG = "error.log"     # in a failed run's folder: the traceback of its last failure

# datasets already loaded in this process, keyed by (name, binarize): a sweep's runs share them
_DATASETS: dict[tuple, object] = {}


@dataclass
class Task:
    index: int              # position in the grid
    name: str               # run directory name inside the sweep's runs folder
    run_dir: str            # absolute path of the run directory
    config: dict            # TrainConfig.to_dict() of the point (already validated)
    consent: dict = field(default_factory=dict)   # rdvae.plugins.consent_state() of the sweep's process


def _dataset(config: dict):
    from ..data import load_dataset
    from ..train.config import AUTO

    key = (config["dataset"], config["binarize"], json.dumps(config.get("data", {}), sort_keys=True))
    if key not in _DATASETS:
        _DATASETS.clear()  # keep at most one dataset in memory per process
        binarize = None if config["binarize"] == AUTO else config["binarize"]   # auto: the trainer decides
        _DATASETS[key] = load_dataset(config["dataset"], binarize=binarize, **config.get("data", {}))
    return _DATASETS[key]


def execute(task: Task, threads: int | None = None, progress: bool = False, on_step=None) -> dict:
    """Train the task's run (resuming it when its directory holds a checkpoint; returning the
    stored summary without training when it is done). Returns {"status", "summary", "error"}.

    The run directory is locked for the duration, so a second sweep process (or a worker left
    over from a killed one) waits instead of training the same run twice.
    """
    from ..plugins import restore_consent
    from ..train import TrainConfig, train

    if task.consent:   # a worker process allows what the sweep's command line allowed
        restore_consent(task.consent)
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    stage = "creating the run folder"
    try:
        Path(task.run_dir).mkdir(parents=True, exist_ok=True)
        with locked(Path(task.run_dir) / RUN_LOCK):
            run = RunDir(task.run_dir)
            stage = "reading the run folder"
            if run.read_summary().get("status") == "done":
                _forget_error(task)
                return {"status": "done", "summary": run.read_summary(), "error": None, "trained": False}
            stage = "reading the config"
            config = TrainConfig.from_dict(task.config)
            stage = "loading the dataset"
            dataset = _dataset(task.config)
            stage = "training"
            summary = train(config, task.run_dir, resume=True, progress=progress, on_step=on_step,
                            dataset=dataset)
            _forget_error(task)
            return {"status": "done", "summary": summary, "error": None, "trained": True}
    except Exception as err:  # noqa: BLE001 - every failure is recorded, the sweep goes on
        return {"status": "failed", "summary": None, "error": _failure(task, err, stage), "trained": False}
    finally:
        if threads:
            torch.set_num_threads(previous_threads)


def _log_name(task: Task) -> str:
    """error.log's path as results.csv names runs: relative to the sweep folder (runs/NAME/error.log)."""
    return f"{Path(task.run_dir).parent.name}/{task.name}/{ERROR_LOG}"


def _failure(task: Task, err: Exception, stage: str) -> str:
    """The row's error: the exception's type and message on one line, the stage it failed in, and
    where its full traceback is (written to the run folder's error.log)."""
    message = " ".join(f"{type(err).__name__}: {err}".split())
    try:
        write_text(Path(task.run_dir) / ERROR_LOG, f"rdvae sweep: run {task.name} failed while {stage}\n\n"
                                                   f"{traceback.format_exc()}")
    except OSError:   # e.g. the run folder cannot be written: the row still has the message
        return f"{message} (while {stage})"
    return f"{message} (while {stage}; full traceback in {_log_name(task)})"


def _forget_error(task: Task) -> None:
    """A run that succeeds keeps no error.log from an earlier failure."""
    try:
        (Path(task.run_dir) / ERROR_LOG).unlink(missing_ok=True)
    except OSError:   # pragma: no cover - a folder we could train into but not delete from
        pass
