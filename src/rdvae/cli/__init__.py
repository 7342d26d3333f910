"""The `rdvae` command. Thin: parse arguments, call the library, print and write.

Each subcommand lives in its own module of this package exposing `register(subparsers)`
(modules are discovered: adding a command is adding a file); the parser sets `handler`, which
returns a dict that `--json` prints as the last line of standard output.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys


class UserError(Exception):
    """An error whose message is the whole story: printed without a traceback."""


def command_modules() -> list:
    names = [m.name for m in pkgutil.iter_modules(__path__) if m.name not in ("options",)]
    modules = [importlib.import_module(f"{__name__}.{name}") for name in names]
    modules = [m for m in modules if hasattr(m, "register")]
    order = {"train": 0, "evaluate": 1}
    return sorted(modules, key=lambda m: (order.get(m.__name__.rsplit(".", 1)[1], 2), m.__name__))


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="rdvae", description="Train VAEs and judge them by rate and distortion (nats).")
    parser.add_argument("--version", action="version", version=f"rdvae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in command_modules():
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..data import DataError
    from ..errors import ConfigError
    from ..plugins import load_plugins
    from ..train import TrainingDiverged

    args = build_parser().parse_args(argv)
    try:
        args.plugins = load_plugins(getattr(args, "plugins", []))
        result = args.handler(args)
    except (UserError, ConfigError, DataError, TrainingDiverged, FileNotFoundError) as err:
        print(f"rdvae {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rdvae {args.command}: interrupted; finished checkpoints are kept "
              "(continue with --resume)", file=sys.stderr)
        return 130
    if getattr(args, "json", False):
        print(json.dumps(result, sort_keys=True, default=str))
    return 0
