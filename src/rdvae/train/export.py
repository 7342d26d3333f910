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

from ..data.registry import is_path
from ..errors import ConfigError
from ..plugins import fingerprints, is_plugin_file, module_name
from ..rundir import (
    CONFIG,
    LOCK,
    METRICS,
    SUMMARY,
    WEIGHTS,
    RunDir,
    atomic_write,
    folder_lock,
    foreign_files,
    write_json,
    write_text,
)
from .config import RECORDED_FIELDS, TRACKING_FIELDS, TrainConfig, read_run_config
from .data import dataset_for

CARD = "README.md"


def card_figures(summary: dict) -> list[tuple[str, str, float]]:
    """The figures of a run's card: (key, label, value) for the headline keys of the registered measures
    (rdvae.evaluate.measures) that the summary holds as finite numbers, labelled with their descriptions
    and units, then other numeric keys no registered measure declares (a plugin's not imported now) that
    are not the run's metadata, under their own names."""
    from ..evaluate.measures import key_label, shown_keys
    from ..sweep.results import RUN_KEYS

    headline, other = shown_keys([summary], exclude=(*RUN_KEYS, "status"))
    return [(key, key_label(key), summary[key]) for key in (*headline, *other)
            if isinstance(summary[key], int | float) and not isinstance(summary[key], bool)
            and math.isfinite(summary[key])]


def train_command(config: TrainConfig, out: str = "RUN_DIR", plugins: list[str] | None = None,
                  dataset: str | None = None) -> str:
    """The `rdvae train` command that trains this config again: every field that differs from the
    default as --set FIELD=JSON (where it reports to and what the trainer records left out); `plugins`
    and `dataset`, where given, stand for the config's (an export's copies, a data file's name)."""
    parts = ["rdvae", "train"]
    for spec in plugins if plugins is not None else []:
        parts += ["--plugin", spec]
    for f in fields(TrainConfig):
        value = getattr(config, f.name)
        default = f.default_factory() if callable(f.default_factory) else f.default
        if f.name in RECORDED_FIELDS + TRACKING_FIELDS or value == default:
            continue
        if f.name == "plugins" and plugins is not None:
            continue
        if f.name == "dataset" and dataset is not None:
            value = dataset
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


def model_card(config: TrainConfig, summary: dict, name: str, command: str, checksum: str,
               data: str | None = None, plugins: list[str] = ()) -> str:
    """The card's README.md. `data`: how the card names the data (a registered dataset's name, or a data
    file's name: then no hub dataset id is claimed, and the file is identified by its SHA-256);
    `plugins`: the plugins the model needs, as the export names them (plugins/NAME.py, or modules)."""
    data = data or config.dataset
    own_file = is_path(config.dataset)
    metrics = card_figures(summary)
    lines = ["---", "library_name: rdvae", "tags:", "- rdvae", "- vae", "- rate-distortion",
             *([] if own_file else ["datasets:", f"- {_scalar(data)}"]),
             "model-index:", f"- name: {_scalar(name)}",
             "  results:", "  - task:", "      type: density-estimation", "      name: Density estimation",
             "    dataset:", f"      name: {_scalar(data)}",
             f"      type: {_scalar('file' if own_file else data)}",
             f"      split: {_scalar(summary.get('split', config.final_split))}", "    metrics:"]
    for key, label, value in metrics:
        lines += [f"    - type: {key}", f"      value: {_scalar(float(value))}",
                  f"      name: {_scalar(label)}"]
    lines += ["rdvae:", f"  command: {_scalar(command)}", f"  dataset: {_scalar(data)}",
              f"  dataset_sha256: {_scalar(checksum)}",
              f"  family: {_scalar(config.family)}", f"  beta: {_scalar(summary.get('beta'))}",
              f"  epochs: {_scalar(config.epochs)}", f"  seed: {_scalar(config.seed)}", "---", ""]
    table = "\n".join(f"| {label} | {float(value):.3f} |" for _, label, value in metrics)
    body = f"""# {name}

A variational autoencoder trained with rdvae and judged by rate and distortion:
family `{config.family}`, latent dimensions {summary.get('latent_dim')}, dataset `{data}`
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

{_load_section(name, plugins)}"""
    return "\n".join(lines) + body


def _from_beside(name: str, plugins) -> list[str]:
    """The export's plugins as named from the folder that holds the export (NAME/plugins/X.py)."""
    return [f"{name}/{spec}" if spec.startswith(f"{PLUGINS_FOLDER}/") else spec for spec in plugins]


def _load_section(name: str, plugins) -> str:
    """How to load the export: its plugin code is imported only when named (rdvae never runs code a
    folder names unasked), so the card names it."""
    if not plugins:
        return ("```python\nfrom rdvae import load_run\n"
                f"trained = load_run({name!r})     # this folder: config.json + model.safetensors\n```\n")
    files = _from_beside(name, plugins)
    flags = " ".join(f"--plugin {shlex.quote(f)}" for f in files)
    return (f"The model's components are registered by plugin code ({', '.join(plugins)}; copied into "
            f"`{PLUGINS_FOLDER}/` where it is a file, with its SHA-256 in config.json). Read it, then name "
            "it to load the model:\n\n"
            f"```\nrdvae eval {shlex.quote(name)} {flags}\n```\n\n"
            "```python\nfrom rdvae import load_run\nfrom rdvae.plugins import load_plugins\n"
            f"load_plugins({files!r}, named=True)\ntrained = load_run({name!r})\n```\n")


PLUGINS_FOLDER = "plugins"   # the plugin files a model needs, copied beside its weights
EXPORT_FILES = (CONFIG, WEIGHTS, SUMMARY, METRICS, CARD)   # written in this order: config.json first


def _is_rdvae_config(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and {"family", "dataset"} <= set(data)


def check_export_folder(out: Path) -> None:
    """An export writes a new or empty folder, or replaces an earlier export, also one that was
    interrupted (config.json, written first, is an rdvae config, beside nothing but the files an export
    writes): a user's own files are never overwritten. The folder and its plugins/ may not be symlinks;
    a file that is a symlink (a model hub's snapshot) is replaced, never written through."""
    for folder in (out, out / PLUGINS_FOLDER):
        if folder.is_symlink():
            raise ConfigError(f"{folder} is a symbolic link; export into a real folder (an export never "
                              "writes through links)")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"export writes a folder, but {out} is a file")
    present = set(foreign_files(out, ()))
    present.discard(LOCK)
    if not present:
        return
    plugins = out / PLUGINS_FOLDER
    plugin_files_ok = not plugins.exists() or (plugins.is_dir() and all(
        p.suffix == ".py" and p.is_file() and not p.is_symlink() for p in plugins.iterdir()))
    earlier_export = (CONFIG in present and present <= {*EXPORT_FILES, PLUGINS_FOLDER}
                      and _is_rdvae_config(out / CONFIG) and plugin_files_ok)
    if not earlier_export:
        raise ConfigError(f"{out} already holds files ({', '.join(sorted(present)[:5])}) and is not an "
                          "earlier export; nothing was changed. Name a new or empty folder")


def _copy(source: Path, target: Path) -> None:
    """Copy atomically: a symlink at `target` is replaced by the file, its target left alone."""
    atomic_write(target, lambda tmp: shutil.copyfile(source, tmp))


def exported_config(config: TrainConfig) -> tuple[dict, dict[str, Path]]:
    """config.json of an export, with no path of the machine that made it: a data file by its name (its
    SHA-256 is recorded beside it), plugin files as plugins/NAME.py (copied there; module plugins by name
    and fingerprint), where the run reports to left out (trackers, tags); and the files to copy."""
    record = config.to_dict()
    copies: dict[str, Path] = {}
    plugins = []
    for spec in config.plugins:
        if is_plugin_file(spec):
            name = f"{module_name(spec)}.py"
            copies[name] = Path(spec)
            plugins.append(f"{PLUGINS_FOLDER}/{name}")
        else:
            plugins.append(spec)
    record["plugins"] = plugins
    record["plugin_fingerprints"] = fingerprints(config.plugins)
    if is_path(config.dataset):
        record["dataset"] = Path(config.dataset).name
    defaults = TrainConfig()
    for name in TRACKING_FIELDS:
        record[name] = getattr(defaults, name)
    return record, copies


def export_run(run_dir: str | Path, out: str | Path) -> dict:
    """Copy a finished run's files into `out` and write its model card; returns what was written.
    Nothing is written outside `out`; running it again after an interruption finishes the export."""
    run, out = RunDir(run_dir), Path(out)
    config, _ = read_run_config(run)
    summary = run.read_summary()
    if summary.get("status") != "done":
        raise ConfigError(f"{run.path} is not a finished run (summary status {summary.get('status')!r}); "
                          "train it to the end (rdvae train --resume) before exporting it")
    if out.resolve() == run.path.resolve():
        raise ConfigError(f"export into another folder than the run itself ({out})")
    check_export_folder(out)
    record, copies = exported_config(config)
    checksum = data_sha256(dataset_for(config, record=False))
    with folder_lock(out, "rdvae export"):
        write_json(out / CONFIG, record)
        plugins = out / PLUGINS_FOLDER
        if copies:
            plugins.mkdir(exist_ok=True)
            for name, source in copies.items():
                _copy(source, plugins / name)
        if plugins.is_dir():
            for stale in plugins.iterdir():   # an earlier export's plugins that this model does not need
                if stale.name not in copies:
                    stale.unlink()
            if not copies:
                plugins.rmdir()
        write_json(out / SUMMARY, {**summary, "dataset": record["dataset"]})
        for name in (WEIGHTS, METRICS):
            if (run / name).exists():
                _copy(run / name, out / name)
            else:                                   # an earlier export's file of a run that had it
                (out / name).unlink(missing_ok=True)
        name = out.resolve().name
        command = train_command(config, plugins=_from_beside(name, record["plugins"]),
                                dataset=record["dataset"])
        write_text(out / CARD, model_card(config, summary, name, command, checksum, record["dataset"],
                                          record["plugins"]))
        (out / LOCK).unlink(missing_ok=True)   # an export carries no lock file (held until the block ends)
    return {"out": str(out), "files": sorted(p.name for p in out.iterdir()), "command": command,
            "dataset_sha256": checksum}
