"""The `rdvae` command. Thin: parse arguments, call the library, print and write.

Each subcommand lives in its own module of this package exposing `register(subparsers)`
(modules are discovered: adding a command is adding a file); the parser sets `handler`, which
returns a dict that `--json` prints as the last line of standard output.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
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
    # OpenMP's default active spin-wait makes threads of processes that share cores wait on each other
    # (30-40x slower with two processes on two cores); passive waiting unless the user chose a policy.
    # Set before torch starts its thread pool; spawned sweep workers inherit it.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from ..data import DataError
    from ..device import set_threads
    from ..errors import ConfigError, EvaluationError
    from ..plugins import load_plugins
    from ..train import TrainingDiverged

    args = build_parser().parse_args(argv)
    try:
        args.threads = set_threads(getattr(args, "threads", None))
        args.plugins = load_plugins(getattr(args, "plugins", []))
        result = args.handler(args)
    except (UserError, ConfigError, DataError, EvaluationError, TrainingDiverged, FileNotFoundError) as err:
        print(f"rdvae {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:   # e.g. `rdvae eval RUN | head -2`: the reader has gone, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"rdvae {args.command}: interrupted; finished checkpoints are kept "
              "(continue with --resume)", file=sys.stderr)
        return 130
    if getattr(args, "json", False):
        print(json.dumps(result, sort_keys=True, default=str))
    return 0
