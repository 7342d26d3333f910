"""A multi-rate run evaluated at several betas, as rows of the sweep results table, so that
`rdvae plot RUN` draws its curve like a sweep's points."""

from __future__ import annotations

import math

from ..evaluate import evaluate_model
from ..protocols import BetaConditioned
from .results import ResultsTable, summary_row


def beta_row_key(beta: float) -> str:
    """The run_dir cell of a multi-rate run's row at one beta: this run directory, at that beta."""
    return f".#beta={beta:g}"


def evaluate_at_betas(trained, x, betas, split: str, iw_samples: int = 0, batch_size: int = 1000,
                      seed: int = 0, precision: str | None = None, progress: bool = False,
                      write: bool = True) -> list[dict]:
    """A multi-rate run evaluated at each beta (`trained` from load_run): one results.csv row per
    beta, in the sweep's format, upserted into the run directory's results.csv when `write`."""
    config, summary = trained.config, trained.run.read_summary()
    if not isinstance(trained.model, BetaConditioned):
        raise ValueError(f"{trained.run.path} is not a multi-rate run (family {config.family!r} builds a "
                         f"{type(trained.model).__name__}, which cannot be conditioned on beta); train one "
                         "with --multi-rate and a beta-conditioned family such as mr-mlp")
    bad = [b for b in betas if not (math.isfinite(b) and b > 0)]
    if bad:
        raise ValueError(f"betas must be positive numbers, got {bad}")
    table, keys, rows = ResultsTable(trained.run.path), [beta_row_key(b) for b in betas], []
    for beta, key in zip(betas, keys, strict=True):
        result = evaluate_model(trained.model, x, iw_samples=iw_samples, batch_size=batch_size, seed=seed,
                                precision=precision or config.precision, progress=progress, beta=beta)
        row = {"run_dir": key, "status": "done", **summary_row({
            **result, "family": config.family, "dataset": config.dataset, "split": split,
            "epochs": config.epochs, "seed": config.seed, "latent_dim": trained.model.latent_dim,
            "train_seconds": summary.get("train_seconds"), "params": trained.model.num_parameters()}),
            "multi_rate": True, "examples": len(x), "error": None}
        if write:
            table.upsert(row, order=keys, swept=("beta",))
        rows.append(row)
    return rows
