"""Config fields declared once: each dataclass field of a config states its kind, default, range,
choices and help text in its ``dataclasses.field(metadata=...)``, and its validation, its command-line
flag and its line in `rdvae list` all come from that one declaration.

    from dataclasses import dataclass
    from rdvae.settings import choice, check_fields, integer, number

    @dataclass
    class MyConfig:
        epochs: int = integer(10, "passes over the training split", low=1, flag=True)
        lr: float = number(1e-3, "the learning rate", low=0, low_open=True, flag=True)
        schedule: str = choice("constant", ("constant", "cosine"), "the learning-rate schedule")

        def validated(self):
            check_fields(self)       # ConfigError: "epochs must be an integer >= 1, got 0"
            return self

    add_flags(parser, MyConfig)      # --epochs EPOCHS, --lr LR (defaults None: only given flags count)
    field_rows(MyConfig)             # [{"name": "epochs", "description": ..., "options": ...}, ...]

The kinds: integer, number (an int or a finite float), boolean, string, choice (one of fixed values),
name (a name registered in an rdvae.registry.Registry, with a did-you-mean when unknown), mapping and
list. `optional=True` (or None among a choice's values) allows None ("null" in JSON) besides.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

SETTING = "rdvae.setting"   # the metadata key under which a field's Setting is stored
KINDS = ("integer", "number", "boolean", "string", "choice", "name", "mapping", "list")
ITEM_KINDS = {None: "a list", "string": "a list of strings"}
# how a value given on the command line is read, per kind (argparse's `type`)
ARGUMENT_TYPES: dict[str, Callable[[str], Any]] = {"integer": int, "number": float, "string": str,
                                                    "choice": str, "name": str}


@dataclass(frozen=True)
class Setting:
    """What one config field accepts and how it is shown: the declaration that validation, command-line
    flags and listings read.

    kind: one of KINDS. help: what the field does, in a phrase (shown by --help and `rdvae list`).
    optional: None is allowed besides. low, high: the range of an integer or number (inclusive unless
    low_open / high_open). choices: the values of a choice. registry: where a name must be registered
    (anything with `kind`, `names()` and a `[name]` that raises ConfigError for an unknown name). items:
    the kind of a list's items (None: anything, "string"). what: the allowed values in words, where the
    kind's own phrase says too little (e.g. "a list of tracker names"). accept: a further test that a
    value of the right kind must pass (described by `what`). flag: a command-line --flag. shown_default:
    the default as --help shows it, where its JSON would mislead (e.g. "the family's" for None)."""

    kind: str
    help: str
    optional: bool = False
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()
    registry: Any = None
    items: str | None = None
    what: str | None = None
    accept: Callable[[Any], bool] | None = None
    flag: bool = False
    shown_default: str | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"a setting's kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not (isinstance(self.help, str) and self.help.strip()):
            raise ValueError(f"a setting needs a help text, got {self.help!r}")
        ranged = self.low is not None or self.high is not None
        if ranged and self.kind not in ("integer", "number"):
            raise ValueError(f"low and high bound integers and numbers, not a {self.kind}")
        if self.low is not None and self.high is not None and not self.low <= self.high:
            raise ValueError(f"a setting's range needs low <= high, got [{self.low}, {self.high}]")
        if (self.kind == "choice") != bool(self.choices):
            raise ValueError("a choice needs its choices, and only a choice has choices")
        if (self.kind == "name") != (self.registry is not None):
            raise ValueError("a name needs the registry it is registered in, and only a name has one")
        if self.items not in ITEM_KINDS or (self.items is not None and self.kind != "list"):
            raise ValueError(f"items (the kind of a list's items) must be one of {list(ITEM_KINDS)}, "
                             f"and only for a list; got {self.items!r} for a {self.kind}")
        if self.flag and self.kind in ("mapping", "list"):
            raise ValueError(f"a {self.kind} cannot be a command-line flag (it is set with --set)")


# -- declaring ------------------------------------------------------------------------------------------

def declare(default: Any, setting: Setting) -> Any:
    """A dataclass field with `default` (a fresh copy each time for a mapping or list) whose metadata
    holds `setting`; the default itself must be allowed (the registry of a name is not asked)."""
    _check_value("the default", setting, default)
    if isinstance(default, dict | list):
        return dataclasses.field(default_factory=lambda: type(default)(default),
                                 metadata={SETTING: setting})
    return dataclasses.field(default=default, metadata={SETTING: setting})


def integer(default: int | None, help: str, *, low: int | None = None, high: int | None = None,
            optional: bool = False, flag: bool = False, shown_default: str | None = None) -> Any:
    """An integer field (bools refused), in [low, high] where given."""
    return declare(default, Setting("integer", help, optional=optional, low=low, high=high, flag=flag,
                                    shown_default=shown_default))


def number(default: float | None, help: str, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, optional: bool = False, flag: bool = False,
           shown_default: str | None = None) -> Any:
    """A finite number field (an int or a float; bools refused), within the bounds given."""
    return declare(default, Setting("number", help, optional=optional, low=low, high=high, low_open=low_open,
                                    high_open=high_open, flag=flag, shown_default=shown_default))


def boolean(default: bool, help: str, *, flag: bool = False) -> Any:
    """A true-or-false field; as a flag, a switch to the other value (--name, or --no-name when on)."""
    return declare(default, Setting("boolean", help, flag=flag))


def string(default: str | None, help: str, *, optional: bool = False, what: str | None = None,
           accept: Callable[[str], bool] | None = None, flag: bool = False,
           shown_default: str | None = None) -> Any:
    """A string field; `accept` a further test, `what` the strings it accepts in words."""
    return declare(default, Setting("string", help, optional=optional, what=what, accept=accept, flag=flag,
                                    shown_default=shown_default))


def choice(default: Any, choices: tuple, help: str, *, flag: bool = False,
           shown_default: str | None = None) -> Any:
    """A field whose value is one of `choices` (None among them: null allowed)."""
    values = tuple(c for c in choices if c is not None)
    return declare(default, Setting("choice", help, choices=values, optional=len(values) < len(choices),
                                    flag=flag, shown_default=shown_default))


def registered(default: str | None, registry: Any, help: str, *, optional: bool = False, flag: bool = False,
         shown_default: str | None = None) -> Any:
    """A field naming something registered in `registry` (an unknown name: the registry's ConfigError
    with a did-you-mean and the registered names). --help lists what is registered when it is built."""
    return declare(default, Setting("name", help, registry=registry, optional=optional, flag=flag,
                                    shown_default=shown_default))


def mapping(help: str, *, what: str | None = None) -> Any:
    """A mapping field (default: empty), e.g. a builder's options."""
    return declare({}, Setting("mapping", help, what=what))


def list_of(help: str, *, items: str | None = None, what: str | None = None) -> Any:
    """A list field (default: empty) whose items are of kind `items` (None: anything, "string")."""
    return declare([], Setting("list", help, items=items, what=what))


# -- reading the declarations ---------------------------------------------------------------------------

def settings_of(config: Any) -> dict[str, Setting]:
    """field name -> Setting for every declared field of a dataclass (class or instance), in order."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"settings_of needs a dataclass, got {config!r}")
    return {f.name: f.metadata[SETTING] for f in dataclasses.fields(config) if SETTING in f.metadata}


def default_of(config: Any, field_name: str) -> Any:
    """The default of a dataclass field (a fresh one for a mapping or list)."""
    found = {f.name: f for f in dataclasses.fields(config)}
    if field_name not in found:
        raise KeyError(f"{config.__name__ if isinstance(config, type) else type(config).__name__} has no "
                       f"field {field_name!r}")
    f = found[field_name]
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def flag_names(config: Any) -> tuple[str, ...]:
    """The fields that are command-line flags, in declaration order."""
    return tuple(n for n, s in settings_of(config).items() if s.flag)


# -- what is allowed, in words --------------------------------------------------------------------------

def _number_text(value: float) -> str:
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    return repr(value)


def _noun(setting: Setting) -> str:
    return "an integer" if setting.kind == "integer" else "a number"


def _low_text(setting: Setting) -> str:
    """'an integer >= 1', 'a positive number', 'a number >= 0': the kind with its lower bound only."""
    if setting.low == 0 and setting.low_open:
        return f"a positive {setting.kind}"
    return f"{_noun(setting)} {'>' if setting.low_open else '>='} {_number_text(setting.low)}"


def _high_text(setting: Setting) -> str:
    return f"{'below' if setting.high_open else 'at most'} {_number_text(setting.high)}"


def _range_text(setting: Setting) -> str:
    """The kind with its whole range: 'an integer in [0, 4294967295]', 'a number <= 1', 'a number'."""
    low, high = setting.low, setting.high
    if low is not None and high is not None:
        return (f"{_noun(setting)} in {'(' if setting.low_open else '['}{_number_text(low)}, "
                f"{_number_text(high)}{')' if setting.high_open else ']'}")
    if low is not None:
        return _low_text(setting)
    if high is not None:
        return f"{_noun(setting)} {'<' if setting.high_open else '<='} {_number_text(high)}"
    return _noun(setting)


def _choice_text(value: Any) -> str:
    return "null" if value is None else str(value)


def allowed(setting: Setting) -> str:
    """What a field accepts, in words: 'an integer >= 1', 'null or a number', 'one of fp32, bf16, auto'."""
    if setting.what is not None:
        text = setting.what
    elif setting.kind in ("integer", "number"):
        text = _range_text(setting)
    elif setting.kind == "choice":
        text = "one of " + ", ".join(map(_choice_text, setting.choices))
    elif setting.kind == "name":
        text = f"the name of a registered {setting.registry.kind}"
    elif setting.kind == "list":
        text = ITEM_KINDS[setting.items]
    else:
        text = {"boolean": "true or false", "string": "a string", "mapping": "a mapping"}[setting.kind]
    return f"null or {text}" if setting.optional else text


# -- validating -----------------------------------------------------------------------------------------

def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _of_kind(setting: Setting, value: Any) -> bool:
    """Whether `value` (not None) is of the setting's kind (ranges and registries aside)."""
    kind = setting.kind
    if kind == "integer":
        return _is_integer(value)
    if kind == "number":
        return _is_number(value)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in ("string", "name"):
        return isinstance(value, str) and (kind == "string" or bool(value))
    if kind == "choice":
        return any(type(value) is type(c) and value == c for c in setting.choices)
    if kind == "mapping":
        return isinstance(value, dict)
    return isinstance(value, list) and (setting.items is None or all(isinstance(v, str) for v in value))


def _check_value(field_name: str, setting: Setting, value: Any) -> None:
    """check_value without asking the registry of a name (for defaults, declared before it loads)."""
    if value is None and setting.optional:
        return
    if value is None or not _of_kind(setting, value) or (setting.accept and not setting.accept(value)):
        raise ConfigError(f"{field_name} must be {allowed(setting)}, got {value!r}")
    if setting.kind not in ("integer", "number"):
        return
    low, high = setting.low, setting.high
    if low is not None and (value <= low if setting.low_open else value < low):
        raise ConfigError(f"{field_name} must be {_low_text(setting)}, got {value!r}")
    if high is not None and (value >= high if setting.high_open else value > high):
        raise ConfigError(f"{field_name} must be {_high_text(setting)}, got {value!r}")


def check_value(field_name: str, setting: Setting, value: Any) -> None:
    """ConfigError naming the field, the value and what is allowed, unless `value` is allowed: of the
    kind, within the range, among the choices, registered (the registry's own error, with a
    did-you-mean), or None where optional. The message names the condition broken: the whole of what
    is allowed for a value of another kind, the lower bound for one below it ('epochs must be an
    integer >= 1, got 0'), the upper bound for one above it ('seed must be at most 4294967295')."""
    _check_value(field_name, setting, value)
    if setting.kind == "name" and value is not None:
        setting.registry[value]   # unknown: a ConfigError with a did-you-mean and the registered names


def check_fields(config: Any, names: tuple[str, ...] | None = None) -> None:
    """check_value for every declared field of a dataclass instance (or those in `names`), in order."""
    for field_name, setting in settings_of(config).items():
        if names is None or field_name in names:
            check_value(field_name, setting, getattr(config, field_name))


# -- command-line flags and listings --------------------------------------------------------------------

def option_string(field_name: str, setting: Setting, default: Any) -> str:
    """The flag of a field: --field-name (--no-field-name for a switch that turns a default true off)."""
    dashed = field_name.replace("_", "-")
    return f"--no-{dashed}" if setting.kind == "boolean" and default is True else f"--{dashed}"


def default_text(setting: Setting, default: Any) -> str:
    """The default as listings show it: the declared text, else its JSON."""
    return setting.shown_default if setting.shown_default is not None else json.dumps(default)


def flag_help(setting: Setting, default: Any) -> str:
    """A flag's help as --help shows it (before argparse's %-escaping): the field's help, what is
    registered now for a name (built-ins and plugins alike), and the default."""
    text = setting.help
    if setting.kind == "name":
        text += ": " + ", ".join(sorted(setting.registry.names()))
    shown = ("on" if default else "off") if setting.kind == "boolean" else default_text(setting, default)
    return f"{text} (default: {shown})"


def add_flags(parser: argparse.ArgumentParser | Any, config: Any, hidden: tuple[str, ...] = ()) -> None:
    """One --flag per field of `config` declared a flag: its kind read by argparse's type, its choices,
    its help with the default (hidden: suppressed from --help). Every flag defaults to None, so that
    only the flags given count; a boolean's flag is a switch to the other value."""
    for field_name in flag_names(config):
        setting = settings_of(config)[field_name]
        default = default_of(config, field_name)
        shown = flag_help(setting, default).replace("%", "%%")   # argparse formats help with %
        help_text = argparse.SUPPRESS if field_name in hidden else shown
        option = option_string(field_name, setting, default)
        if setting.kind == "boolean":
            parser.add_argument(option, dest=field_name, action="store_const", const=not default,
                                default=None, help=help_text)
        else:
            parser.add_argument(option, dest=field_name, type=ARGUMENT_TYPES[setting.kind], default=None,
                                metavar=field_name.upper(), choices=setting.choices or None, help=help_text)


def field_rows(config: Any) -> list[dict]:
    """One row per declared field of a dataclass: name, description (its help) and options (what it
    accepts, its default and its flag), as `rdvae list` prints registered things."""
    rows = []
    for field_name, setting in settings_of(config).items():
        default = default_of(config, field_name)
        accepts = allowed(setting)
        if setting.kind == "name":
            accepts += f" ({', '.join(sorted(setting.registry.names()))})"
        options = f"{accepts}; default {default_text(setting, default)}"
        if setting.flag:
            options += f"; {option_string(field_name, setting, default)}"
        rows.append({"name": field_name, "description": setting.help, "options": options})
    return rows
