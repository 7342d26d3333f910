"""results.csv: one row per run of a sweep, rewritten atomically on every change.

Each write reads the table, replaces the run's row, and writes the whole table to a temporary
file moved into place with os.replace, under an exclusive lock (so parallel writers never
lose a row and an interrupted sweep never leaves a half-written one).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import ConfigError
from ..rundir import write_text

RESULTS_FILE = "results.csv"
LOCK_FILE = ".results.lock"
# a run's metadata in its row: properties of the training run (its config and how it went), not measures;
# the measured columns are the keys of the registered measures (rdvae.evaluate.measures)
RUN_KEYS = ("beta", "family", "dataset", "split", "epochs", "seed", "train_seconds", "params", "target_rate",
            "latent_dim", "skipped_updates", "effective_beta", "epochs_trained", "converged", "plateau_gain",
            "stop_reason")
TIMING_KEYS = ("train_seconds",)
STATUSES = ("done", "failed")


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on `path` (a no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)   # never via a link
    except OSError as err:
        raise ConfigError(f"cannot lock {path} ({err.strerror or err}): it must be a plain file in a folder "
                          "this process can write, not a symbolic link") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, bool | int | float | str):
        return str(value) if not isinstance(value, bool) else json.dumps(value)
    return json.dumps(value, separators=(",", ":"))


def _parse(text: str):
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if text[0] in "[{" or text in ("true", "false"):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    return text


class ResultsTable:
    """The results.csv of a sweep directory."""

    def __init__(self, sweep_dir: str | Path):
        self.dir = Path(sweep_dir)
        self.path = self.dir / RESULTS_FILE

    def read(self) -> list[dict]:
        """Rows as dicts with numbers parsed (missing values are None)."""
        if not self.path.exists():
            return []
        try:
            with open(self.path, newline="") as fh:
                rows = [{k: _parse(v) for k, v in row.items()} for row in csv.DictReader(fh)]
        except (csv.Error, UnicodeDecodeError, TypeError, AttributeError) as err:
            rows, problem = None, str(err)
        if rows is None or any(None in row or not isinstance(row.get("run_dir"), str) for row in rows):
            from .spec import SweepError

            what = problem if rows is None else "rows without run_dir"
            raise SweepError(f"{self.path} is damaged ({what}); delete it and run `rdvae sweep --out "
                             f"{self.dir}` to write it again from the runs") from None
        return rows

    def by_run(self) -> dict[str, dict]:
        return {row["run_dir"]: row for row in self.read()}

    def upsert(self, row: dict, order: Sequence[str] = (), swept: Sequence[str] = ()) -> None:
        """Write `row` (replacing the row with the same run_dir), rows sorted by `order` (run
        dirs; others after), columns: run_dir, status, swept fields, the measures' keys (registry
        order), the run keys, other keys, error."""
        self._put(row, order, swept, keep=False)

    def update(self, row: dict, order: Sequence[str] = (), swept: Sequence[str] = ()) -> None:
        """As upsert, but the cells of the row with the same run_dir that `row` does not name are kept
        (e.g. the keys of a measure whose plugin this process has not imported)."""
        self._put(row, order, swept, keep=True)

    def _put(self, row: dict, order: Sequence[str], swept: Sequence[str], keep: bool) -> None:
        if row.get("status") not in STATUSES:
            raise ValueError(f"row status must be one of {STATUSES}, got {row.get('status')!r}")
        with locked(self.dir / LOCK_FILE):
            rows = {r["run_dir"]: r for r in self._raw_rows()}
            cells = {k: _cell(v) for k, v in row.items()}
            rows[row["run_dir"]] = {**rows.get(row["run_dir"], {}), **cells} if keep else cells
            rank = {name: i for i, name in enumerate(order)}
            ordered = sorted(rows.values(), key=lambda r: (rank.get(r["run_dir"], len(rank)), r["run_dir"]))
            self._write(ordered, swept)

    def _raw_rows(self) -> list[dict]:
        if not self.path.exists():
            return []
        with open(self.path, newline="") as fh:   # rows of a damaged table are dropped (rewritten from runs)
            return [dict(row) for row in csv.DictReader(fh) if None not in row and row.get("run_dir")]

    def _write(self, rows: list[dict], swept: Sequence[str]) -> None:
        from ..evaluate.measures import measure_keys

        present = dict.fromkeys(k for row in rows for k in row)
        columns = ["run_dir", "status", *swept, *(k for k in measure_keys() if k in present), *RUN_KEYS]
        columns += [k for k in present if k != "error"]
        columns.append("error")
        columns = list(dict.fromkeys(columns))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_text(self.path, buffer.getvalue())


def as_stored(row: dict) -> dict:
    """`row` as it reads back from results.csv (what a comparison with read rows needs)."""
    return {k: _parse(_cell(v)) for k, v in row.items()}


def summary_row(summary: dict, evaluation: dict | None = None) -> dict:
    """The cells of a run's row from its summary.json: the run keys, and the keys of the registered
    measures that it holds (the trainer's, and those `rdvae eval RUN --measure ...` stored there).

    `evaluation`: a later evaluation of the run's split that went to eval-SPLIT.json (one on a random
    subset): the measures' keys that the summary lacks are taken from it, with the subset they were
    measured on (`subset`)."""
    from ..evaluate.measures import measure_keys

    keys = measure_keys()
    row = {k: summary.get(k) for k in RUN_KEYS}
    row.update({k: summary[k] for k in keys if k in summary})
    if evaluation is not None and evaluation.get("split") == summary.get("split", evaluation.get("split")):
        added = {k: evaluation[k] for k in keys if k in evaluation and k not in summary}
        if added:
            row.update(added, subset=evaluation.get("subset"))
    return row


def config_row(config: dict) -> dict:
    """What a config alone tells about a run that has no summary (a failed run)."""
    beta = None if config.get("target_rate") is not None else config.get("beta")
    row = {k: config.get(k) for k in ("family", "dataset", "epochs", "seed", "target_rate",
                                      "latent_dim")}
    return {**row, "beta": beta, "split": config.get("final_split"),
            "iw_samples": config.get("iw_samples") or None}


def comparable(row: dict) -> dict:
    """A row without its timing columns, for comparing two sweeps' results."""
    return {k: v for k, v in row.items() if k not in TIMING_KEYS}


def format_rows(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """A plain-text table of `rows`: the given columns, then R, D, -ELBO (nats) and status."""
    header = [*columns, "R", "D", "-ELBO", "status"]
    lines = []
    for row in rows:
        figures = [row.get("rate"), row.get("distortion"),
                   None if row.get("elbo") is None else -row["elbo"]]
        cells = [_display(row.get(c)) for c in columns]
        cells += ["" if v is None else f"{v:.2f}" for v in figures]
        status = row.get("status") or ""
        if status == "failed" and row.get("error"):
            error = str(row["error"])
            status += ": " + (error if len(error) <= 70 else error[:67] + "...")
        lines.append([*cells, status])
    widths = [max(len(h), *(len(r[i]) for r in lines)) if lines else len(h) for i, h in enumerate(header)]
    numeric = {len(columns), len(columns) + 1, len(columns) + 2}

    def fmt(cells):
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *(fmt(r) for r in lines)])


def _display(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return _cell(value)
