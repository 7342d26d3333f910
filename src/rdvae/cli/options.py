"""Argument helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import functools
import json
import math
from pathlib import Path


class Parser(argparse.ArgumentParser):
    """The ArgumentParser of `rdvae` and its subcommands: it records the long options that take exactly
    one value (`single_values`, one set shared with the parsers of its subcommands and its argument
    groups), so that rdvae.cli.join_dash_values can join a value that starts with "-" to its option
    without reading argparse's internals."""

    def __init__(self, *args, single_values: set[str] | None = None, **kwargs):
        self.single_values: set[str] = set() if single_values is None else single_values
        super().__init__(*args, **kwargs)   # adds -h through add_argument: single_values is set first

    def add_argument(self, *args, **kwargs) -> argparse.Action:
        return _record(self.single_values, super().add_argument(*args, **kwargs))

    def add_argument_group(self, *args, **kwargs) -> _RecordingGroup:
        return _RecordingGroup(super().add_argument_group(*args, **kwargs), self.single_values)

    def add_mutually_exclusive_group(self, **kwargs) -> _RecordingGroup:
        return _RecordingGroup(super().add_mutually_exclusive_group(**kwargs), self.single_values)

    def add_subparsers(self, **kwargs):
        kwargs.setdefault("parser_class", functools.partial(type(self), single_values=self.single_values))
        return super().add_subparsers(**kwargs)


class _RecordingGroup:
    """An argument group whose add_argument also records the options that take one value; everything
    else is the group's own."""

    def __init__(self, group, single_values: set[str]):
        self._group = group
        self._single_values = single_values

    def add_argument(self, *args, **kwargs) -> argparse.Action:
        return _record(self._single_values, self._group.add_argument(*args, **kwargs))

    def __getattr__(self, name: str):
        return getattr(self._group, name)


def _record(single_values: set[str], action: argparse.Action) -> argparse.Action:
    """Add the long option strings of `action` to `single_values` when it takes exactly one value
    (nargs None: store, append, a type, choices; not a switch, not nargs="+")."""
    if action.option_strings and action.nargs is None:
        single_values.update(s for s in action.option_strings if s.startswith("--"))
    return action


def parse_assignment(text: str) -> tuple[str, object]:
    """'key=value' with value parsed as JSON when it is valid JSON, else kept as a string."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    if not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with a non-empty KEY, got {text!r}")
    from ..errors import ConfigError
    from ..rundir import loads_bounded

    try:
        value = loads_bounded(raw, key.strip()[:60])   # argparse names the option: "argument --set: KEY: ..."
    except ConfigError as err:   # nested too deeply
        raise argparse.ArgumentTypeError(str(err)) from None
    except json.JSONDecodeError as err:
        if raw.lstrip()[:1] in ("[", "{", '"'):   # meant as JSON: say what is wrong, never pass it on
            raise argparse.ArgumentTypeError(f"{key.strip()}: {raw!r} is not valid JSON ({err.msg} at "
                                             f"character {err.pos})") from None
        value = raw
    return key.strip(), value


def _integer(text: str, low: int, high: int | None = None) -> int:
    bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer {bounds}, got {text!r}") from None
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"expected an integer {bounds}, got {value}")
    return value


def seed_int(text: str) -> int:
    """argparse type: a seed, 0 <= seed <= device.SEED_MAX."""
    from ..device import SEED_MAX

    return _integer(text, 0, SEED_MAX)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _integer(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _integer(text, 0)


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def out_directory(path) -> Path | None:
    """--out as a Path; a UserError when it names an existing file."""
    from . import UserError

    if path is None:
        return None
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path} is a file, not a directory; choose another --out")
    return path


def add_common(parser: argparse.ArgumentParser, out: bool = True, out_help: str = "output directory") -> None:
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object as the last line of standard output (default: off)")
    parser.add_argument("--plugin", dest="plugins", action="append", default=[], metavar="MODULE_OR_FILE",
                        help="import a module or .py file that registers encoders, decoders, marginals, "
                             "families, datasets or objectives (repeatable). Runs record it (with its "
                             "SHA-256) in config.json; a later command imports a recorded plugin only when "
                             "it is named again with --plugin (which replaces a recorded plugin of the same "
                             "module name, e.g. a moved file) or with --trust-plugins. Plugins of the "
                             "entry-point group 'rdvae.plugins' are always imported")
    parser.add_argument("--trust-plugins", action="store_true",
                        help="import the plugin code that run and sweep folders name without --plugin (only "
                             "for folders whose code you trust; default: off, such a folder is refused "
                             "with the list of what it wants to import; also RDVAE_TRUST_PLUGINS=1)")
    parser.add_argument("--accept-plugin-changes", action="store_true",
                        help="use a recorded plugin whose code changed since the run was made (its "
                             "weights may then mean another model); the new SHA-256 is recorded when the "
                             "command writes the run (default: off, refused)")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="hide progress bars (default: shown)")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="torch threads (default: the free cores, i.e. the cores minus the load "
                             "average; a sweep splits them between its workers)")
    if out:
        parser.add_argument("--out", help=out_help)


def add_tracking(parser: argparse.ArgumentParser) -> None:
    """--log TRACKER (repeatable) and the trackers' commonest options (the rest: --set log_options.X=V)."""
    parser.add_argument("--log", dest="log", action="append", default=None, metavar="TRACKER",
                        help="also log to this tracker: tensorboard, mlflow, wandb, or a registered logger "
                             "(repeatable; pip install 'rdvae[tensorboard]' etc.; default: metrics.jsonl "
                             "only)")
    parser.add_argument("--mlflow-uri", default=None, metavar="URI",
                        help="--log mlflow: the tracking server or store (default: $MLFLOW_TRACKING_URI, "
                             "else a local file store RUN_DIR/mlruns, or SWEEP_DIR/mlruns for a sweep)")
    parser.add_argument("--wandb-project", default=None, metavar="NAME",
                        help="--log wandb: the W&B project (default: rdvae); WANDB_MODE=offline is honoured")


def tracking_settings(args) -> dict:
    """The config fields that add_tracking's options give (only those given)."""
    settings: dict = {}
    if args.log:
        settings["log"] = list(args.log)
    if args.mlflow_uri is not None:
        settings["log_options.mlflow_uri"] = args.mlflow_uri
    if args.wandb_project is not None:
        settings["log_options.wandb_project"] = args.wandb_project
    return settings
