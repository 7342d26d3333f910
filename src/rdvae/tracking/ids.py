"""trackers.json in the run directory: the id each tracker gave the run, so that a resumed run logs
into the same tracker run instead of starting another; and whether each tracker's finish (final
metrics, artifacts, run status) completed:

    {"mlflow": "<run id>", "wandb": "<run id>",
     "finish": {"step": 12, "trackers": {"mlflow": "done", "tensorboard": "pending", "wandb": "failed"}}}

"pending" is written before summary.json's status becomes "done", "done" once the tracker's finish
returned without error, "failed" where it raised or timed out or the tracker had been left out;
`--resume` of a done run finishes again the trackers recorded "pending" or "failed". Only runs with
trackers (--log) have the file."""

from __future__ import annotations

import threading
from pathlib import Path

from ..rundir import read_json, write_json

TRACKERS_FILE = "trackers.json"
FINISH = "finish"
PENDING, DONE, FAILED = "pending", "done", "failed"
_WRITING = threading.Lock()   # the trackers' threads update the file side by side


def _read(path: Path) -> dict:
    return read_json(path) if path.exists() else {}


def _update(run_dir: Path, change) -> None:
    path = Path(run_dir) / TRACKERS_FILE
    with _WRITING:
        write_json(path, change(_read(path)))


def tracker_id(run_dir: Path, tracker: str) -> str | None:
    return _read(Path(run_dir) / TRACKERS_FILE).get(tracker)


def record_tracker_id(run_dir: Path, tracker: str, value: str) -> None:
    _update(run_dir, lambda ids: {**ids, tracker: value})


def finish_record(run_dir: Path) -> dict:
    """The trackers' finish as recorded, {"step": S, "trackers": {name: state}}; {} if none was."""
    record = _read(Path(run_dir) / TRACKERS_FILE).get(FINISH)
    if not isinstance(record, dict) or not isinstance(record.get("trackers"), dict):
        return {}
    return record


def record_finish_pending(run_dir: Path, trackers, step: int) -> None:
    """Before the run is done: every tracker's finish is still to come (a new record)."""
    record = {"step": step, "trackers": dict.fromkeys(trackers, PENDING)}
    _update(run_dir, lambda ids: {**ids, FINISH: record})


def record_finish(run_dir: Path, tracker: str, state: str) -> None:
    """`tracker`'s finish DONE or FAILED; FAILED never replaces DONE (a tracker that finished late)."""
    def change(ids: dict) -> dict:
        record = ids.get(FINISH) if isinstance(ids.get(FINISH), dict) else {}
        states = record.get("trackers") if isinstance(record.get("trackers"), dict) else {}
        if state == FAILED and states.get(tracker) == DONE:
            return ids
        return {**ids, FINISH: {**record, "trackers": {**states, tracker: state}}}

    _update(run_dir, change)


def unfinished(run_dir: Path, trackers) -> list[str]:
    """Those of `trackers` whose finish is recorded as not done (pending or failed)."""
    states = finish_record(run_dir).get("trackers", {})
    return [name for name in trackers if states.get(name) in (PENDING, FAILED)]
