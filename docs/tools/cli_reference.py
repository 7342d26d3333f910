"""The CLI reference page, generated from the `rdvae` argparse parsers (rdvae.cli.build_parser).

Every command (and subcommand, if one ever has its own) gets a section: its usage, description and
epilog as `rdvae CMD --help` prints them, and a table with one row per argument: how it is written,
its help text, its default and its choices. tests/docs/test_cli_reference.py walks the same parsers
and checks that the page has every one of them.
"""

from __future__ import annotations

import argparse
import json
import re


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser, str]]:
    """(name, parser, one-line help) of each subcommand of `parser`, in the order `--help` lists them."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            found += [(name, sub, helps.get(name, "")) for name, sub in action.choices.items()]
    return found


def arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The arguments of one command (not its subcommands), help included."""
    return [a for a in parser._actions if not isinstance(a, argparse._SubParsersAction)]


def help_text(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The action's help as `--help` prints it (%(default)s and the like expanded), on one line."""
    if not action.help or action.help == argparse.SUPPRESS:
        return ""
    return " ".join(parser._get_formatter()._expand_help(action).split())


def invocation(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """How the argument is written: `--iw-samples K`, `-h, --help`, `RUN_OR_SWEEP`."""
    return parser._get_formatter()._format_action_invocation(action)


def default_text(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The default: for a switch, "off"; else the parser's default when it is a value; else what the help
    states (config fields leave the parser's default None, so that only the flags given count, and state
    the config's default in their help); else "none"."""
    if action.nargs == 0:
        return "off" if not isinstance(action, argparse._HelpAction | argparse._VersionAction) else "-"
    if action.default not in (None, argparse.SUPPRESS, [], ()):
        return action.default if isinstance(action.default, str) else json.dumps(action.default)
    stated = re.search(r"\(default:? (.*)\)\s*$", help_text(parser, action))
    return stated.group(1) if stated else "none"


def _cell(text: str) -> str:
    """Text for a Markdown table cell: pipes escaped, no HTML, no emphasis or link by accident (code spans
    in backticks kept as code)."""
    parts = re.split(r"(`[^`]*`)", text)
    for i, part in enumerate(parts):
        if i % 2:   # a code span, as it is (the table extension does not split cells inside one)
            continue
        part = part.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
        parts[i] = part.replace("*", "\\*").replace("_", "\\_").replace("[", "\\[")
    return "".join(parts)


def _code(text: str) -> str:
    """Inline code that may hold backticks and pipes (inside a table)."""
    return "<code>" + text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace(
        "|", "&#124;") + "</code>"


def _formatted(parser: argparse.ArgumentParser, text: str | None) -> str:
    if not text:
        return ""
    formatter = parser._get_formatter()
    formatter.add_text(text)
    return formatter.format_help().rstrip()


def anchor(path: list[str]) -> str:
    """The heading id of a command's section: `rdvae-train`."""
    return "-".join(["rdvae", *path])


def _section(parser: argparse.ArgumentParser, path: list[str], summary: str) -> list[str]:
    name = " ".join(["rdvae", *path])
    lines = [f"## `{name}` {{ #{anchor(path) } }}", ""]
    if summary:
        lines += [_cell(summary[:1].upper() + summary[1:]) + ".", ""]
    lines += ["```text", parser.format_usage().strip()]
    for part in (parser.description, parser.epilog):
        text = _formatted(parser, part)
        if text:
            lines += ["", text]
    lines += ["```", "", "| argument | help | default | choices |", "|---|---|---|---|"]
    for action in arguments(parser):
        choices = ", ".join(map(str, action.choices)) if action.choices else ""
        lines.append(f"| {_code(invocation(parser, action))} | {_cell(help_text(parser, action))} "
                     f"| {_cell(default_text(parser, action))} | {_cell(choices)} |")
    lines.append("")
    for sub_name, sub, sub_help in _subcommands(parser):
        lines += _section(sub, [*path, sub_name], sub_help)
    return lines


def commands(parser: argparse.ArgumentParser, path: list[str] | None = None):
    """(path, parser) of every command below `parser`, depth first: (["train"], ...), ..."""
    for name, sub, _ in _subcommands(parser):
        yield [*(path or []), name], sub
        yield from commands(sub, [*(path or []), name])


def cli_markdown(parser: argparse.ArgumentParser | None = None) -> str:
    """The whole page."""
    if parser is None:
        from rdvae.cli import build_parser

        parser = build_parser()
    lines = [
        "# Command-line reference",
        "",
        "Generated from the parsers of the `rdvae` command (`rdvae.cli.build_parser`) each time the site "
        "is built, so it lists exactly the options of the installed version; `rdvae COMMAND --help` "
        "prints the same. Config fields (the options of `train` and `sweep` such as `--epochs`) leave "
        "the parser's default unset so that only the flags given count; their default column is the "
        "config's default, as their help states it (`rdvae list config` lists every field, also "
        "those without a flag, settable with `--set FIELD=VALUE`).",
        "",
        "| command | what it does |",
        "|---|---|",
    ]
    for path, _ in commands(parser):
        summary = dict((n, h) for n, _, h in _subcommands(parser)).get(path[0], "") if len(path) == 1 else ""
        lines.append(f"| [`rdvae {' '.join(path)}`](#{anchor(path)}) | {_cell(summary)} |")
    lines += ["", "```text", parser.format_usage().strip(), "", _formatted(parser, parser.description),
              "```", "", "| argument | help | default | choices |", "|---|---|---|---|"]
    for action in arguments(parser):
        lines.append(f"| {_code(invocation(parser, action))} | {_cell(help_text(parser, action))} "
                     f"| {_cell(default_text(parser, action))} | |")
    lines.append("")
    for name, sub, sub_help in _subcommands(parser):
        lines += _section(sub, [name], sub_help)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":   # python docs/tools/cli_reference.py: print the page
    print(cli_markdown())
