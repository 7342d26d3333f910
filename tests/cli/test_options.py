"""rdvae.cli.options.Parser records the options that take one value; join_dash_values reads that record."""

import argparse

import pytest

from rdvae.cli import build_parser, join_dash_values
from rdvae.cli.options import Parser


def test_the_parser_records_single_value_options_of_subcommands_and_groups():
    parser = Parser(prog="p")
    parser.add_argument("--top", type=int)
    sub = parser.add_subparsers(dest="command")
    one = sub.add_parser("one")
    one.add_argument("--name")
    one.add_argument("--many", nargs="+")
    one.add_argument("--switch", action="store_true")
    one.add_argument("--repeat", "-r", action="append")
    group = one.add_argument_group("more")
    group.add_argument("--grouped", type=float)
    exclusive = one.add_mutually_exclusive_group()
    exclusive.add_argument("--either")
    assert isinstance(one, Parser) and one.single_values is parser.single_values
    assert parser.single_values == {"--top", "--name", "--repeat", "--grouped", "--either"}
    assert parser.parse_args(["one", "--grouped", "2"]).grouped == 2.0


def test_the_record_equals_what_argparse_holds():
    """The same options that the former walk over argparse's internals found (read here, in a test)."""
    parser = build_parser()
    walked = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                walked.update(s for a in sub._actions if a.option_strings and a.nargs is None
                              for s in a.option_strings if s.startswith("--"))
    assert parser.single_values == walked and {"--family", "--beta", "--ais", "--seed"} <= walked


@pytest.mark.parametrize(("argv", "joined"), [
    (["train", "--family", "-+v"], ["train", "--family=-+v"]),
    (["train", "--beta", "-1e-3", "--family", "---"], ["train", "--beta=-1e-3", "--family=---"]),
    (["eval", "RUN", "--ais", "-5"], ["eval", "RUN", "--ais=-5"]),          # an option of an argument group
    (["eval", "RUN", "--betas", "-1"], ["eval", "RUN", "--betas", "-1"]),   # nargs="+": left to argparse
    (["train", "--json", "-1"], ["train", "--json", "-1"]),                 # a switch takes no value
])
def test_dash_values_are_joined_to_the_options_that_take_one_value(argv, joined):
    assert join_dash_values(argv, build_parser()) == joined


def test_family_codes_and_negative_numbers_parse():
    parser = build_parser()
    args = parser.parse_args(join_dash_values(["train", "--family", "-+v", "--beta", "-inf"], parser))
    assert (args.family, args.beta) == ("-+v", -float("inf"))


def test_join_dash_values_needs_the_recording_parser():
    with pytest.raises(TypeError, match="rdvae.cli.options.Parser"):
        join_dash_values(["train"], argparse.ArgumentParser())
