"""`rdvae export RUN DIR`: a folder ready to publish (e.g. to the Hugging Face Hub): model.safetensors,
config.json, summary.json, metrics.jsonl and a model card README.md whose YAML front matter holds the
figures (as a model-index), the command that trains the run again and the data's SHA-256.
`load_run(DIR)` loads the folder like the run directory it came from."""

from __future__ import annotations

import hashlib
import json
import math
import shlex
import shutil
from dataclasses import fields
from pathlib import Path

from ..errors import ConfigError
from ..rundir import CONFIG, METRICS, SUMMARY, WEIGHTS, RunDir, write_text
from .config import RECORDED_FIELDS, TRACKING_FIELDS, TrainConfig
from .data import dataset_for

CARD = "README.md"
CARD_FIGURES = (("rate", "rate R (nats)"), ("distortion", "distortion D (nats)"), ("elbo", "ELBO (nats)"),
                ("iw_nll", "IW negative log-likelihood (nats)"), ("mutual_info", "I_q(x;z) (nats)"),
                ("active_units", "active units"))


def train_command(config: TrainConfig, out: str = "RUN_DIR") -> str:
    """The `rdvae train` command that trains this config again: every field that differs from the
    default as --set FIELD=JSON (where it reports to and what the trainer records left out)."""
    parts = ["rdvae", "train"]
    for f in fields(TrainConfig):
        value = getattr(config, f.name)
        default = f.default_factory() if callable(f.default_factory) else f.default
        if f.name in RECORDED_FIELDS + TRACKING_FIELDS or value == default:
            continue
        parts += ["--set", f"{f.name}={json.dumps(value, sort_keys=True, separators=(',', ':'))}"]
    return shlex.join([*parts, "--out", out])


def data_sha256(dataset) -> str:
    """The data's SHA-256: the recorded file checksum where there is one, else that of the float32
    train, valid and test tensors as loaded (in that order)."""
    if dataset.fingerprint is not None:
        return dataset.fingerprint
    digest = hashlib.sha256()
    for split in ("train", "valid", "test"):
        digest.update(dataset.split(split).contiguous().float().numpy().tobytes())
    return digest.hexdigest()


def _scalar(value) -> str:
    """A YAML scalar that YAML 1.1 and 1.2 parsers read back as the same value (JSON spelling, floats
    with a decimal point so that 1e-05 is not read as a string)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return "null"
        text = repr(value)
        mantissa, e, exponent = text.partition("e")
        if e and "." not in mantissa:
            text = f"{mantissa}.0e{'+' if not exponent.startswith('-') else ''}{exponent.lstrip('+')}"
        return text
    return json.dumps(value)


def model_card(config: TrainConfig, summary: dict, name: str, command: str, checksum: str) -> str:
    metrics = [(key, label, summary[key]) for key, label in CARD_FIGURES
               if isinstance(summary.get(key), int | float) and math.isfinite(summary[key])]
    lines = ["---", "library_name: rdvae", "tags:", "- rdvae", "- vae", "- rate-distortion",
             "datasets:", f"- {_scalar(config.dataset)}", "model-index:", f"- name: {_scalar(name)}",
             "  results:", "  - task:", "      type: density-estimation", "      name: Density estimation",
             "    dataset:", f"      name: {_scalar(config.dataset)}",
             f"      type: {_scalar(config.dataset)}",
             f"      split: {_scalar(summary.get('split', config.final_split))}", "    metrics:"]
    for key, label, value in metrics:
        lines += [f"    - type: {key}", f"      value: {_scalar(float(value))}",
                  f"      name: {_scalar(label)}"]
    lines += ["rdvae:", f"  command: {_scalar(command)}", f"  dataset_sha256: {_scalar(checksum)}",
              f"  family: {_scalar(config.family)}", f"  beta: {_scalar(summary.get('beta'))}",
              f"  epochs: {_scalar(config.epochs)}", f"  seed: {_scalar(config.seed)}", "---", ""]
    table = "\n".join(f"| {label} | {float(value):.3f} |" for _, label, value in metrics)
    body = f"""# {name}

A variational autoencoder trained with rdvae and judged by rate and distortion:
family `{config.family}`, latent dimensions {summary.get('latent_dim')}, dataset `{config.dataset}`
({summary.get('split', config.final_split)} split, nats per example).

| figure | value |
|---|---|
{table}

## Train it again

```
{command}
```

Data SHA-256: `{checksum}`.

## Load it

```python
from rdvae import load_run
trained = load_run("{name}")     # this folder: config.json + model.safetensors
```
"""
    return "\n".join(lines) + body


def check_export_folder(out: Path) -> None:
    """An export writes a new or empty folder, or replaces an earlier export (its card and config beside
    nothing but the files an export writes): a user's own files are never overwritten."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"export writes a folder, but {out} is a file")
    present = {p.name for p in out.iterdir()} if out.is_dir() else set()
    earlier_export = {CARD, CONFIG} <= present <= {WEIGHTS, CONFIG, SUMMARY, METRICS, CARD}
    if present and not earlier_export:
        raise ConfigError(f"{out} already holds files ({', '.join(sorted(present)[:5])}) and is not an "
                          "earlier export; name a new or empty folder")


def export_run(run_dir: str | Path, out: str | Path) -> dict:
    """Copy a finished run's files into `out` and write its model card; returns what was written."""
    run, out = RunDir(run_dir), Path(out)
    config = TrainConfig.from_dict(run.read_config())
    summary = run.read_summary()
    if summary.get("status") != "done":
        raise ConfigError(f"{run.path} is not a finished run (summary status {summary.get('status')!r}); "
                          "train it to the end (rdvae train --resume) before exporting it")
    if out.resolve() == run.path.resolve():
        raise ConfigError(f"export into another folder than the run itself ({out})")
    check_export_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS, CONFIG, SUMMARY, METRICS):
        if (run / name).exists():
            shutil.copyfile(run / name, out / name)
        else:                                   # an earlier export's file of a run that had it
            (out / name).unlink(missing_ok=True)
    checksum = data_sha256(dataset_for(config, record=False))
    command = train_command(config)
    write_text(out / CARD, model_card(config, summary, out.resolve().name, command, checksum))
    return {"out": str(out), "files": sorted(p.name for p in out.iterdir()), "command": command,
            "dataset_sha256": checksum}
