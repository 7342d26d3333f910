"""The `rdvae` command. Thin: parse arguments, call the library, print and write.

Each subcommand lives in its own module exposing `register(subparsers)`; the parser sets
`handler`, which returns a dict that `--json` prints as the last line of standard output.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import evaluate as evaluate_cmd
from . import train as train_cmd

COMMANDS = [train_cmd, evaluate_cmd]


class UserError(Exception):
    """An error whose message is the whole story: printed without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="rdvae", description="Train VAEs and judge them by rate and distortion (nats).")
    parser.add_argument("--version", action="version", version=f"rdvae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..data import DataError
    from ..objectives import ObjectiveError
    from ..presets import UnknownFamilyError
    from ..train import ConfigError, TrainingDiverged

    args = build_parser().parse_args(argv)
    try:
        result = args.handler(args)
    except (UserError, ConfigError, DataError, ObjectiveError, UnknownFamilyError,
            TrainingDiverged, FileNotFoundError) as err:
        print(f"rdvae {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rdvae {args.command}: interrupted; finished checkpoints are kept "
              "(continue with --resume)", file=sys.stderr)
        return 130
    if getattr(args, "json", False):
        print(json.dumps(result, sort_keys=True, default=str))
    return 0
