"""Argument helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import json


def parse_assignment(text: str) -> tuple[str, object]:
    """'key=value' with value parsed as JSON when it is valid JSON, else kept as a string."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def add_common(parser: argparse.ArgumentParser, out: bool = True) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object as the last line of standard output")
    parser.add_argument("--plugin", dest="plugins", action="append", default=[], metavar="MODULE_OR_FILE",
                        help="import a module or .py file that registers encoders, decoders, marginals, "
                             "families, datasets or objectives (repeatable; runs record it in config.json, "
                             "so later commands import it again); plugins of the entry-point group "
                             "'rdvae.plugins' are always imported")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="hide progress bars")
    if out:
        parser.add_argument("--out", help="output directory")
