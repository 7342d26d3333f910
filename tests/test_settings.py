"""rdvae.settings: a config field declared once gives its validation, its flag and its listing row."""

import argparse
import math
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdvae.errors import ConfigError
from rdvae.registry import Registry
from rdvae.settings import (
    Setting,
    add_flags,
    allowed,
    boolean,
    check_fields,
    check_value,
    choice,
    declare,
    field_rows,
    flag_help,
    flag_names,
    integer,
    list_of,
    mapping,
    number,
    registered,
    settings_of,
    string,
)

COLOURS = Registry("colour")
COLOURS.register("red", object())
COLOURS.register("green", object())


@dataclass
class Example:
    """A config with one field of every kind."""

    epochs: int = integer(10, "passes", low=1, flag=True)
    seed: int = integer(0, "the seed", low=0, high=99, flag=True)
    width: int | None = integer(None, "a width", low=1, optional=True, flag=True, shown_default="automatic")
    lr: float = number(1e-3, "the rate, 5% of it warm-up", low=0, low_open=True, flag=True)
    fraction: float = number(0.5, "a fraction", low=0, high=1)
    target: float | None = number(None, "a target", optional=True)
    fast: bool = boolean(False, "go fast", flag=True)
    careful: bool = boolean(True, "be careful", flag=True)
    device: str = string("cpu", "where", what="cpu or gpu", accept=lambda d: d in ("cpu", "gpu"), flag=True)
    mode: str | None = choice("a", (None, "a", "b"), "the mode", flag=True)
    colour: str = registered("red", COLOURS, "a colour", flag=True)
    options: dict = mapping("the options", what="a mapping of options")
    names: list = list_of("names", items="string")
    anything: list = list_of("anything")
    free: str = "not declared"


def test_defaults_pass_and_mappings_are_fresh():
    check_fields(Example())
    assert Example().options is not Example().options and Example().names == []
    assert "free" not in settings_of(Example) and list(settings_of(Example))[0] == "epochs"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("epochs", 0, "epochs must be an integer >= 1, got 0"),
    ("epochs", 1.5, "epochs must be an integer >= 1, got 1.5"),
    ("epochs", True, "epochs must be an integer >= 1, got True"),
    ("epochs", None, "epochs must be an integer >= 1, got None"),
    ("seed", -1, "seed must be an integer >= 0, got -1"),
    ("seed", 100, "seed must be at most 99, got 100"),
    ("seed", "3", "seed must be an integer in [0, 99], got '3'"),
    ("width", 0, "width must be an integer >= 1, got 0"),
    ("width", "abc", "width must be null or an integer >= 1, got 'abc'"),
    ("lr", 0, "lr must be a positive number, got 0"),
    ("lr", math.nan, "lr must be a positive number, got nan"),
    ("lr", math.inf, "lr must be a positive number, got inf"),
    ("fraction", 2, "fraction must be at most 1, got 2"),
    ("fraction", "half", "fraction must be a number in [0, 1], got 'half'"),
    ("target", "abc", "target must be null or a number, got 'abc'"),
    ("fast", 1, "fast must be true or false, got 1"),
    ("device", "tpu", "device must be cpu or gpu, got 'tpu'"),
    ("device", 3, "device must be cpu or gpu, got 3"),
    ("mode", "c", "mode must be null or one of a, b, got 'c'"),
    ("colour", 3, "colour must be the name of a registered colour, got 3"),
    ("colour", "", "colour must be the name of a registered colour, got ''"),
    ("colour", "rde", "unknown colour 'rde' (did you mean 'red'?); registered: red, green"),
    ("options", [], "options must be a mapping of options, got []"),
    ("names", ["a", 3], "names must be a list of strings, got ['a', 3]"),
    ("anything", "x", "anything must be a list, got 'x'"),
])
def test_a_value_not_allowed_is_refused_naming_field_value_and_what_is_allowed(field, value, message):
    config = Example()
    setattr(config, field, value)
    with pytest.raises(ConfigError) as err:
        check_fields(config)
    assert str(err.value) == message


@pytest.mark.parametrize(("field", "value"), [
    ("width", None), ("target", None), ("target", 3), ("mode", None), ("mode", "b"), ("lr", 2),
    ("fraction", 1), ("seed", 99), ("colour", "green"), ("anything", [1, "a"])])
def test_allowed_values_pass(field, value):
    config = Example()
    setattr(config, field, value)
    check_fields(config)


@given(st.one_of(st.text(), st.booleans(), st.lists(st.integers(), max_size=2),
                 st.dictionaries(st.text(max_size=2), st.integers(), max_size=2)))
def test_an_optional_number_refuses_every_other_kind(value):
    with pytest.raises(ConfigError, match=r"^target must be null or a number, got "):
        check_value("target", settings_of(Example)["target"], value)


def test_check_fields_can_check_some_fields_only():
    config = Example(epochs=0)
    check_fields(config, ("seed",))
    with pytest.raises(ConfigError, match="epochs"):
        check_fields(config, ("epochs",))


@pytest.mark.parametrize(("make", "message"), [
    (lambda: Setting("float", "x"), "kind must be one of"),
    (lambda: Setting("integer", " "), "needs a help text"),
    (lambda: Setting("string", "x", low=1), "bound integers and numbers"),
    (lambda: Setting("integer", "x", low=2, high=1), "low <= high"),
    (lambda: Setting("string", "x", choices=("a",)), "only a choice"),
    (lambda: Setting("name", "x"), "registry"),
    (lambda: Setting("list", "x", items="number"), "items"),
    (lambda: Setting("mapping", "x", flag=True), "cannot be a command-line flag"),
])
def test_a_wrong_declaration_is_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_default_that_its_own_declaration_refuses_is_refused():
    with pytest.raises(ConfigError, match="the default must be an integer >= 1, got 0"):
        integer(0, "x", low=1)
    with pytest.raises(ConfigError, match="the default must be a string"):
        declare(3, Setting("string", "x"))


def test_allowed_describes_ranges_in_words():
    open_interval = Setting("number", "x", low=0, high=1, low_open=True, high_open=True)
    assert allowed(open_interval) == "a number in (0, 1)"
    assert allowed(Setting("number", "x", high=1.5)) == "a number <= 1.5"
    assert allowed(Setting("integer", "x", low=0, low_open=True)) == "a positive integer"
    assert allowed(Setting("number", "x", low=-1, low_open=True)) == "a number > -1"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_flags(parser, Example, hidden=("seed",))
    return parser


def test_flags_are_the_declared_fields_with_types_choices_and_none_defaults():
    assert flag_names(Example) == ("epochs", "seed", "width", "lr", "fast", "careful", "device", "mode",
                                   "colour")
    args = _parser().parse_args([])
    assert all(getattr(args, name) is None for name in flag_names(Example))
    args = _parser().parse_args(["--epochs", "3", "--lr", "0.5", "--fast", "--no-careful", "--mode", "b",
                                 "--width", "7", "--colour", "green"])
    given = (args.epochs, args.lr, args.fast, args.careful, args.mode, args.width, args.colour)
    assert given == (3, 0.5, True, False, "b", 7, "green")
    with pytest.raises(SystemExit):
        _parser().parse_args(["--mode", "c"])   # a choice's values are argparse's choices


def test_flag_help_shows_the_default_and_what_is_registered():
    settings = settings_of(Example)
    assert flag_help(settings["epochs"], 10) == "passes (default: 10)"
    assert flag_help(settings["width"], None) == "a width (default: automatic)"
    assert flag_help(settings["fast"], False) == "go fast (default: off)"
    assert flag_help(settings["colour"], "red") == 'a colour: green, red (default: "red")'
    text = _parser().format_help()
    assert "5% of it warm-up" in text and "--seed" not in text   # % escaped for argparse; hidden flag


def test_field_rows_describe_every_declared_field():
    rows = {row["name"]: row for row in field_rows(Example)}
    assert list(rows) == list(settings_of(Example))
    assert rows["epochs"] == {"name": "epochs", "description": "passes",
                              "options": "an integer >= 1; default 10; --epochs"}
    assert rows["careful"]["options"] == "true or false; default true; --no-careful"
    assert rows["colour"]["options"] == ('the name of a registered colour (green, red); default "red"; '
                                         "--colour")
    assert rows["options"]["options"] == "a mapping of options; default {}"


def test_settings_of_needs_a_dataclass():
    with pytest.raises(TypeError, match="needs a dataclass"):
        settings_of(object())
