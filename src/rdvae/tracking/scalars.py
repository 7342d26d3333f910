"""How the trainer's records read in a tracker: one naming of tags, params and final metrics,
shared by every backend.

    epoch record (metrics.jsonl)   rate, distortion, elbo, objective, mutual_info, active_units,
                                   effective_beta -> "<split>/<name>" (e.g. valid/rate);
                                   train_<name> -> "train_epoch/<name>"; skipped -> skipped_updates;
                                   lr, epoch, train_seconds as they are
    per-step record                "train/loss", "train/rate", "train/distortion" (already tags)
    summary.json                   its figures -> "final/<name>" (TensorBoard's HParams metrics)
"""

from __future__ import annotations

import json
import math

SPLIT_FIGURES = ("rate", "distortion", "elbo", "objective", "mutual_info", "active_units", "effective_beta")
RENAMED = {"skipped": "skipped_updates"}
NOT_SCALARS = ("step",)   # the x-axis, not a curve
FINAL_FIGURES = ("rate", "distortion", "elbo", "iw_nll", "mutual_info", "active_units", "effective_beta",
                 "skipped_updates", "train_seconds", "epochs_trained")


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def tracker_scalars(record: dict) -> dict[str, float]:
    """A metrics.jsonl record (or a per-step record) as tracker tags -> numbers; strings, None and
    non-finite values are left out."""
    split = record.get("split", "valid")
    scalars = {}
    for key, value in record.items():
        if key in NOT_SCALARS or not is_number(value):
            continue
        if "/" in key:
            tag = key
        elif key in SPLIT_FIGURES:
            tag = f"{split}/{key}"
        elif key.startswith("train_") and key != "train_seconds":
            tag = f"train_epoch/{key.removeprefix('train_')}"
        else:
            tag = RENAMED.get(key, key)
        scalars[tag] = float(value)
    return scalars


def final_metrics(summary: dict) -> dict[str, float]:
    """summary.json's figures as "final/<name>" tags."""
    return {f"final/{k}": float(summary[k]) for k in FINAL_FIGURES if is_number(summary.get(k))}


def flat_params(config: dict) -> dict[str, str | int | float | bool]:
    """config.json as flat params (model.hidden, data.X, ...), the run's tags (log_tags: a sweep's swept
    fields) on top; lists, None and other values as JSON text."""
    params: dict = {}
    for key, value in config.items():
        if key == "log_tags":
            continue
        if isinstance(value, dict):
            params.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            params[key] = value
    params.update(config.get("log_tags") or {})
    return {k: v if isinstance(v, str | bool) or is_number(v) else json.dumps(v, sort_keys=True)
            for k, v in params.items()}
