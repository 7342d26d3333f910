"""A multi-rate run evaluated at several betas, as rows of the sweep results table, so that
`rdvae plot RUN` draws its curve like a sweep's points."""

from __future__ import annotations

import math

from ..evaluate.measures import run_measures
from ..evaluate.report import model_measures
from ..protocols import BetaConditioned, conditioned
from .results import ResultsTable, summary_row


def beta_row_key(beta: float) -> str:
    """The run_dir cell of a multi-rate run's row at one beta: this run directory, at that beta."""
    return f".#beta={beta:g}"


def evaluate_at_betas(trained, x, betas, split: str, iw_samples: int = 0, batch_size: int = 1000,
                      seed: int = 0, precision: str | None = None, progress: bool = False,
                      write: bool = True, measures: dict | None = None) -> list[dict]:
    """A multi-rate run evaluated at each beta (`trained` from load_run): one results.csv row per
    beta, in the sweep's format, upserted into the run directory's results.csv when `write`. `measures`
    (name -> options, rdvae.evaluate.measures): what is measured at each beta (default: what
    evaluate_model measures, with the IW-NLL of `iw_samples` importance samples when > 0)."""
    config, summary = trained.config, trained.run.read_summary()
    if not isinstance(trained.model, BetaConditioned):
        raise ValueError(f"{trained.run.path} is not a multi-rate run (family {config.family!r} builds a "
                         f"{type(trained.model).__name__}, which cannot be conditioned on beta); train one "
                         "with --multi-rate and a beta-conditioned family such as mr-mlp")
    bad = [b for b in betas if not (math.isfinite(b) and b > 0)]
    if bad:
        raise ValueError(f"betas must be positive numbers, got {bad}")
    if measures is None:
        measures = model_measures(iw_samples)
    table, keys, rows = ResultsTable(trained.run.path), [beta_row_key(b) for b in betas], []
    for beta, key in zip(betas, keys, strict=True):
        with conditioned(trained.model, beta):
            result = run_measures(trained.model, x, measures, seed=seed, batch_size=batch_size,
                                  precision=precision or config.precision, progress=progress,
                                  inputs={"dataset": trained.dataset, "config": config})
        row = {"run_dir": key, "status": "done", **summary_row({
            **result, "beta": beta, "family": config.family, "dataset": config.dataset, "split": split,
            "epochs": config.epochs, "seed": config.seed, "latent_dim": trained.model.latent_dim,
            "train_seconds": summary.get("train_seconds"), "params": trained.model.num_parameters()}),
            "multi_rate": True, "error": None}
        if write:
            table.upsert(row, order=keys, swept=("beta",))
        rows.append(row)
    return rows
