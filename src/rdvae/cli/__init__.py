"""The `rdvae` command. Thin: parse arguments, call the library, print and write.

Each subcommand lives in its own module of this package exposing `register(subparsers)`
(modules are discovered: adding a command is adding a file); the parser sets `handler`, which
returns a dict that `--json` prints as the last line of standard output.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import re
import sys

from .options import Parser


class UserError(Exception):
    """An error whose message is the whole story: printed without a traceback."""


def command_modules() -> list:
    names = [m.name for m in pkgutil.iter_modules(__path__) if m.name not in ("options",)]
    modules = [importlib.import_module(f"{__name__}.{name}") for name in names]
    modules = [m for m in modules if hasattr(m, "register")]
    order = {"train": 0, "evaluate": 1}
    return sorted(modules, key=lambda m: (order.get(m.__name__.rsplit(".", 1)[1], 2), m.__name__))


def build_parser() -> Parser:
    from .. import __version__

    parser = Parser(
        prog="rdvae", description="Train VAEs and judge them by rate and distortion (nats).")
    parser.add_argument("--version", action="version", version=f"rdvae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in command_modules():
        module.register(sub)
    return parser


# a value that starts with "-" but is not an option: a paper family code (-+v, ---) or a number in any form
DASH_VALUE = re.compile(r"[-+][-+][-+v]|-(\d|\.\d|inf|nan|infinity)\S*", re.IGNORECASE)


def join_dash_values(argv: list[str], parser: Parser) -> list[str]:
    """`--family -+v` -> `--family=-+v`: argparse reads a value that starts with "-" as an option unless
    it looks like a plain negative number; options that take one value (of any subcommand: the parser
    records them as they are added) get such values joined."""
    if not isinstance(parser, Parser):
        raise TypeError(f"join_dash_values needs the parser of build_parser (an rdvae.cli.options.Parser, "
                        f"which records the options that take one value), got {type(parser).__name__}")
    single = parser.single_values
    out, i = [], 0
    while i < len(argv):
        token = argv[i]
        if token in single and i + 1 < len(argv) and DASH_VALUE.fullmatch(argv[i + 1]):
            out.append(f"{token}={argv[i + 1]}")
            i += 2
            continue
        out.append(token)
        i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    # OpenMP's default active spin-wait makes threads of processes that share cores wait on each other
    # (30-40x slower with two processes on two cores); passive waiting unless the user chose a policy.
    # Set before torch starts its thread pool; spawned sweep workers inherit it.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from ..data import DataError
    from ..device import set_threads
    from ..engine.distributed import RankLost
    from ..errors import ConfigError, EvaluationError
    from ..plugins import accept_plugin_changes, forget_consent, load_plugins, trust_plugins
    from ..train import TrainingDiverged
    from .options import out_directory

    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(join_dash_values(argv, parser))
    args.argv = argv   # the command as given (`rdvae train --nproc N` runs it again under torchrun)
    try:
        args.threads = set_threads(getattr(args, "threads", None))
        trust_plugins(bool(getattr(args, "trust_plugins", False)))
        accept_plugin_changes(bool(getattr(args, "accept_plugin_changes", False)))
        args.plugins = load_plugins(getattr(args, "plugins", []), named=True)
        if getattr(args, "out", None) is not None:
            out_directory(args.out)
        result = args.handler(args)
    except (UserError, ConfigError, DataError, EvaluationError, TrainingDiverged, RankLost, FileNotFoundError,
            IsADirectoryError, NotADirectoryError, PermissionError) as err:   # the last four: files as found
        message = " ".join(str(err).split())   # one line, whatever the message held
        print(f"rdvae {args.command}: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:   # e.g. `rdvae eval RUN | head -2`: the reader has gone, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"rdvae {args.command}: interrupted; finished checkpoints are kept "
              "(continue with --resume)", file=sys.stderr)
        return 130
    finally:   # consent given on this command line ends with it (main may be called again in-process)
        forget_consent()
    if getattr(args, "json", False):
        print(json.dumps(result, sort_keys=True, default=str))
    return 0
