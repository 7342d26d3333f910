"""trackers.json in the run directory: the id each tracker gave the run, so that a resumed run logs
into the same tracker run instead of starting another."""

from __future__ import annotations

from pathlib import Path

from ..rundir import read_json, write_json

TRACKERS_FILE = "trackers.json"


def tracker_id(run_dir: Path, tracker: str) -> str | None:
    path = Path(run_dir) / TRACKERS_FILE
    return read_json(path).get(tracker) if path.exists() else None


def record_tracker_id(run_dir: Path, tracker: str, value: str) -> None:
    path = Path(run_dir) / TRACKERS_FILE
    ids = read_json(path) if path.exists() else {}
    write_json(path, {**ids, tracker: value})
