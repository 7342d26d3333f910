"""Evaluating a trained run, or every finished run of a sweep, with registered measures
(rdvae.evaluate.measures), and keeping what was measured where it belongs:

    summary.json      the run's final split, every example: the run's own figures (its results.csv row)
    eval-SPLIT.json   another split, or a random subset of the examples (a quick or a costly look)

Within summary.json each measure's keys are replaced together, so that no key stays behind from an
earlier measurement of the same measure (e.g. h_hat_minus_d beside a new IW-NLL). Evaluating a sweep
also rewrites its runs' rows of results.csv, so that a measure's keys (ais_nll, a plugin's) become
columns there.

A sharded evaluation (evaluate_run(..., sharded=True), and any evaluate_run in a process that joined a
torchrun group with rdvae.engine.distributed.init) measures with per-block streams
(rdvae.evaluate.sharded.run_sharded): every rank opens the run and measures its blocks, rank 0 alone holds
the run's lock, runs the measures that are not sharded and writes. It records how the draws were made as
eval_streams ("per-block"), eval_world_size and eval_block (not `world_size`, which is the training's);
an evaluation with one stream that rewrites summary.json removes them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..data.dataset import SPLITS
from ..engine import distributed
from ..errors import ConfigError
from ..rundir import CONFIG, SUMMARY, RunDir, write_json
from .measures import plan_measures, run_measures

if TYPE_CHECKING:
    from ..train import TrainedRun

# what an evaluation of a run measures when no measures are named (rdvae eval RUN)
DEFAULT_MEASURES = ("rate-distortion", "mutual-info", "active-units")
# how a sharded evaluation drew (rdvae.evaluate.sharded's keys -> the stored keys)
SHARDED_KEYS = {"streams": "eval_streams", "world_size": "eval_world_size", "block": "eval_block"}


@dataclass
class Evaluation:
    """One run's evaluation: the stored keys (with split, and subset where one was drawn) and the file
    they were written to (None: not written)."""

    trained: TrainedRun             # the run measured
    result: dict
    split: str
    stored: Path | None
    subset: str | None = None

    @property
    def in_summary(self) -> bool:
        return self.stored is not None and self.stored.name == SUMMARY


def random_subset(total: int, n: int, seed: int) -> tuple[torch.Tensor, str]:
    """The indices of n of `total` examples drawn with `seed`, in increasing order, and a phrase saying
    so. (A split's first rows need not be typical: static binarized MNIST's test file is ordered.)"""
    picked = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n]
    return picked.sort().values, f"a random subset of {n} of {total} examples (seed {seed})"


def evaluate_run(run, measures: Mapping[str, Mapping | None] | None = None, split: str | None = None,
                 examples: int | None = None, seed: int = 0, batch_size: int = 1000,
                 precision: str | None = None, progress: bool = False, device: str = "auto",
                 write: bool = True, sharded: bool = False, block: int | None = None) -> Evaluation:
    """Measure a trained run (a run directory, or a TrainedRun from rdvae.train.load_run) with `measures`
    (name -> options; default: DEFAULT_MEASURES) on `split` (default: the run's final split), or on a
    random subset of `examples` of its examples drawn with `seed`; and, with `write`, store the result:
    into summary.json for the whole final split, else into eval-SPLIT.json. The run's folder lock is held
    throughout. `precision`: default the run's.

    `sharded` (implied in a process of a torchrun group, rdvae.engine.distributed.init): per-block streams
    with `block` examples per block (default rdvae.evaluate.sharded.DEFAULT_BLOCK), sharded over the ranks
    of the group; the figures of any world size, one process included (see the module's docstring). Under
    a group the run is opened on the rank's device (not `device`), and only rank 0 writes (the other ranks'
    Evaluation has stored None and the sharded measures' keys only)."""
    from ..train import TrainedRun, load_run
    from ..train.config import run_record
    from .sharded import DEFAULT_BLOCK, check_block

    plan_measures(DEFAULT_MEASURES if measures is None else measures)   # checked before the run is loaded
    if block is not None and not sharded and distributed.current() is None:
        raise ConfigError(f"block={block!r} sets the blocks of a sharded evaluation; pass sharded=True "
                          "(rdvae eval --sharded) or evaluate under torchrun")
    if sharded or distributed.current() is not None:
        block = check_block(DEFAULT_BLOCK if block is None else block)
        return _evaluate_sharded(run, measures, split, examples, seed, batch_size, precision, progress,
                                 device, write, block)
    if isinstance(run, TrainedRun):
        with run.run.lock("rdvae eval"):
            return _evaluate(run, measures, split, examples, seed, batch_size, precision, progress, write)
    folder = RunDir(run)
    folder.read_config()   # a run folder (or FileNotFoundError), before the lock is taken in it
    with folder.lock("rdvae eval"):
        trained = load_run(run, device=device)
        if trained.changed_plugins and write:   # accepted changes: the readings are the new code's
            trained.run.write_config(run_record(trained.config, trained.run.path))
        return _evaluate(trained, measures, split, examples, seed, batch_size, precision, progress, write)


def _evaluate(trained, measures, split, examples, seed, batch_size, precision, progress, write) -> Evaluation:
    x, split, subset, planned, inputs = _examples(trained, measures, split, examples, seed)
    measures = dict.fromkeys(DEFAULT_MEASURES) if measures is None else dict(measures)
    result = run_measures(trained.model, x, measures, seed=seed, batch_size=batch_size,
                          precision=precision or trained.config.precision, progress=progress, inputs=inputs)
    return _store(trained, planned, result, split, subset, write)


def _examples(trained, measures, split, examples, seed):
    """The examples an evaluation measures (x: the split, or a random subset of it), the split, the phrase
    of the subset (None: all), the planned measures and the inputs they need (labels of x, ...)."""
    config, dataset = trained.config, trained.dataset
    measures = dict.fromkeys(DEFAULT_MEASURES) if measures is None else dict(measures)
    split = config.final_split if split is None else split
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    x = dataset.split(split)
    if not isinstance(x, torch.Tensor):
        raise ConfigError(f"the {split} split of {dataset.name} is streamed from disk; evaluate the valid or "
                          "test split")
    if examples is not None and not (isinstance(examples, int) and not isinstance(examples, bool)
                                     and examples >= 1):
        raise ConfigError(f"examples must be an integer >= 1 (a random subset of that many), got "
                          f"{examples!r}")
    index, subset = None, None
    if examples is not None and examples < len(x):
        index, subset = random_subset(len(x), examples, seed)
        x = x[index.to(x.device)]
    planned = plan_measures(measures)
    needs = {need for step in planned for need in step.measure.needs}
    inputs: dict = {"dataset": dataset, "config": config}
    if "labels" in needs:
        labels = dataset.labels.get(split)
        if labels is None:
            named = ", ".join(s.measure.name for s in planned if "labels" in s.measure.needs)
            raise ConfigError(f"measure(s) {named} need labels, and the {split} split of {dataset.name} has "
                              "none")
        inputs["labels"] = labels if index is None else labels[index.to(labels.device)]
    return x, split, subset, planned, inputs


def _store(trained, planned, result: dict, split: str, subset: str | None, write: bool,
           drop: tuple[str, ...] = tuple(SHARDED_KEYS.values())) -> Evaluation:
    """The evaluation's result with its split (and subset), stored when `write`: its measures' keys (and
    `drop`) replaced in summary.json for the whole final split, else the file eval-SPLIT.json."""
    config = trained.config
    result["split"] = split
    if subset is not None:
        result["subset"] = subset
    stored = None
    if write:
        if split == config.final_split and subset is None:
            stored = trained.run / SUMMARY
            summary = trained.run.read_summary()
            for step in planned:   # a measure's keys are replaced together: none stays from an earlier one
                for key in step.measure.keys:
                    summary.pop(key, None)
            for key in drop:
                summary.pop(key, None)
            write_json(stored, {**summary, **result})
        else:
            stored = trained.run / f"eval-{split}.json"
            write_json(stored, result)
    return Evaluation(trained, result, split, stored, subset)


def _evaluate_sharded(run, measures, split, examples, seed, batch_size, precision, progress, device, write,
                      block) -> Evaluation:
    """evaluate_run's sharded evaluation: every rank opens the run and measures its blocks; rank 0 holds
    the lock, measures what is not sharded and writes."""
    from ..train import TrainedRun, load_run
    from ..train.config import run_record
    from .sharded import all_ranks, run_sharded

    group, main = distributed.current(), distributed.is_main()
    if group is not None:
        device = str(group.device)
    with contextlib.ExitStack() as held:
        with all_ranks("to open the run"):
            if isinstance(run, TrainedRun):
                trained = run
                if main:
                    held.enter_context(trained.run.lock("rdvae eval"))
            else:
                folder = RunDir(run)
                folder.read_config()   # a run folder (or FileNotFoundError), before the lock is taken in it
                if main:
                    held.enter_context(folder.lock("rdvae eval"))
                trained = load_run(run, device=device)
                if trained.changed_plugins and write and main:
                    trained.run.write_config(run_record(trained.config, trained.run.path))
            x, split, subset, planned, inputs = _examples(trained, measures, split, examples, seed)
        measures = dict.fromkeys(DEFAULT_MEASURES) if measures is None else dict(measures)
        result = run_sharded(trained.model, x, measures, seed=seed, batch_size=batch_size,
                             precision=precision or trained.config.precision, progress=progress, block=block,
                             inputs=inputs)
        result = {SHARDED_KEYS.get(key, key): value for key, value in result.items()}
        return _store(trained, planned, result, split, subset, write and main)


# -- a sweep's runs -------------------------------------------------------------------------------------
@dataclass
class SweepEvaluation:
    """What evaluating a sweep did: runs evaluated (run_dir as in results.csv -> Evaluation), runs that
    failed (-> the error), runs not finished (not evaluated), and the table whose rows were rewritten."""

    sweep: Path
    results: Path
    evaluated: dict[str, Evaluation] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    unfinished: list[str] = field(default_factory=list)


OnRun = Callable[[str, "Evaluation | None", "str | None"], None]   # (run_dir, evaluation, error)


def is_sweep(path: str | Path) -> bool:
    """Whether `path` is a sweep directory (sweep.json and runs/), not a run directory."""
    from ..sweep.spec import RUNS_FOLDER, SPEC_FILE

    path = Path(path)
    return (path / SPEC_FILE).is_file() and (path / RUNS_FOLDER).is_dir() and not (path / CONFIG).exists()


def evaluate_sweep(sweep_dir: str | Path, measures: Mapping[str, Mapping | None] | None = None,
                   split: str | None = None, examples: int | None = None, seed: int = 0,
                   batch_size: int = 1000, precision: str | None = None, progress: bool = False,
                   device: str = "auto", on_run: OnRun | None = None) -> SweepEvaluation:
    """evaluate_run on every finished run of the sweep in `sweep_dir` (each under its own lock), then its
    row of the sweep's results.csv rewritten (under the table's lock) with what the run's summary now holds
    and, from an evaluation of its final split that went to eval-SPLIT.json (a subset), the keys the
    summary lacks (with the subset they were measured on). A run that fails is recorded in `failed` and
    the others go on; `on_run(run_dir, evaluation, error)` is called after each."""
    from ..sweep.results import ResultsTable, config_row, summary_row
    from ..sweep.spec import RUNS_FOLDER, SweepError, load_spec

    sweep_dir = Path(sweep_dir)
    spec = load_spec(sweep_dir)
    if spec is None:
        raise SweepError(f"{sweep_dir} holds no sweep.json; it is not a sweep directory")
    plan_measures(DEFAULT_MEASURES if measures is None else measures)   # refused before any run is opened
    table = ResultsTable(sweep_dir)
    order = [f"{RUNS_FOLDER}/{name}" for name in spec.names]
    report = SweepEvaluation(sweep=sweep_dir, results=table.path)
    for index, key in enumerate(order):
        run_dir = sweep_dir / key
        evaluation, error = None, None
        try:
            if run_dir.is_symlink():
                raise ConfigError(f"{run_dir} is a symbolic link; a sweep's runs are folders of its own")
            if RunDir(run_dir).read_summary().get("status") != "done":
                report.unfinished.append(key)
                continue
            evaluation = evaluate_run(run_dir, measures, split=split, examples=examples, seed=seed,
                                      batch_size=batch_size, precision=precision, progress=progress,
                                      device=device)
            summary = evaluation.trained.run.read_summary()
            later = None if evaluation.in_summary else evaluation.result
            row = {"run_dir": key, "status": "done", **spec.points[index],
                   **config_row(evaluation.trained.config.to_dict()), **summary_row(summary, later),
                   "error": None}
            table.update(row, order=order, swept=spec.swept_fields)
            report.evaluated[key] = evaluation
        except Exception as err:  # noqa: BLE001 - one run's failure (its data, its plugin, a lock) stops no other
            error = f"{type(err).__name__}: {' '.join(str(err).split())}"
            report.failed[key] = error
            evaluation = None
        if on_run is not None:
            on_run(key, evaluation, error)
    return report
