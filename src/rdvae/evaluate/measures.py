"""Measures: what an evaluation measures on a model, one registered function each.

A measure is a function fn(model, x, *, seed, **options) -> {key: value}, registered with the keys it
returns (each with a short description and, where it has them, its units) through `register_measure`,
the same decorator for rdvae's own measures and a user's plugin:

    from rdvae import register_measure

    @register_measure("posterior-scale", keys={"posterior_scale": "mean posterior standard deviation"},
                      units="latent units")
    def posterior_scale(model, x, *, seed, batch_size=1000, floor: float = 0.0):
        \"\"\"The posterior's standard deviation, averaged over examples and latent dimensions.\"\"\"
        with torch.no_grad():
            scale = torch.cat([model.encoder(xb).stddev for xb in x.split(batch_size)])
        return {"posterior_scale": scale.clamp_min(floor).mean().item()}

`rdvae eval RUN --plugin FILE --measure posterior-scale --measure-option posterior-scale.floor=0.1`
then stores posterior_scale in summary.json (or eval-SPLIT.json), and results.csv, the report page and
the model card show it under its description.

What a measure's function receives:

    model, x        the model (in eval mode) and the examples to measure, [N, *event_shape]
    seed            the evaluation's seed
    options         its other keyword parameters, with their defaults (`--measure-option NAME.KEY=V`);
                    the registry checks them (known, of the kind of their default); one without a
                    default must be given
    CONTEXT         batch_size, precision, progress: the evaluation's settings; earlier: what the
                    measures before it in this evaluation returned. Passed where its signature names them.
    needs           data besides x that it declares (INPUTS: labels, dataset, config), passed by name.

Order and randomness: the measures of one evaluation run in registry order (rdvae's own first, in the
order of rdvae.evaluate.builtin_measures; a plugin's after them) and draw their Monte Carlo samples from
one torch random stream, seeded once with `seed`, so that the order is part of the numbers. A measure
called alone, `MEASURES[name](model, x, seed=s)`, seeds that stream itself. A measure that uses an
earlier one's result reads it from `earlier` (ais's paired difference to the IW-NLL reads the per-example
log p(x) that iw-nll passes on): values a measure passes on without storing them are declared as its
`shares`.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torch

from ..device import PRECISIONS, SEED_MAX, seeded
from ..errors import ConfigError, EvaluationError, unknown_names
from ..registry import Registry, check_option_value
from .batching import model_device

# what a measure may receive by declaring it in `needs` (the evaluation of a run supplies them)
INPUTS = {
    "labels": "the labels of the measured examples, [N] (from datasets with labels)",
    "dataset": "the run's rdvae.data.Dataset (its other splits and their labels)",
    "config": "the run's TrainConfig",
}
# the evaluation's own settings, passed to a measure where its signature names them (not options)
CONTEXT = ("seed", "batch_size", "precision", "progress", "earlier")

MEASURES = Registry("measure", ("rdvae.evaluate.builtin_measures",), leading=2)


class Measure:
    """A registered measure: its function and what it declares (keys with descriptions and units, needs,
    shares, headline keys, report lines). Calling it measures alone: the torch random stream seeded with
    `seed` for the call, the function given seed=seed and the other arguments as they are."""

    def __init__(self, name: str, function: Callable, keys: dict[str, str], units: dict[str, str],
                 needs: tuple[str, ...], shares: tuple[str, ...], headline: tuple[str, ...],
                 lines: Callable[[dict, int | None], list[str]] | None):
        functools.update_wrapper(self, function)   # its name, docstring and signature (inspect unwraps)
        self.name, self.function = name, function
        self.keys, self.units, self.needs, self.shares = keys, units, needs, shares
        self.headline, self._lines = headline, lines
        parameters = inspect.signature(function).parameters
        self.accepts_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
        self.parameters = frozenset(parameters)

    def __call__(self, model, x, *, seed: int = 0, **arguments) -> dict:
        with seeded(seed, model_device(model)):
            return self.function(model, x, seed=seed, **arguments)

    def __repr__(self) -> str:
        return f"Measure({self.name!r}, keys={list(self.keys)})"

    def takes(self, name: str) -> bool:
        return self.accepts_any or name in self.parameters

    def label(self, key: str) -> str:
        """A key's description with its units: 'rate R (nats)'."""
        units = self.units.get(key)
        return f"{self.keys[key]} ({units})" if units else self.keys[key]

    def lines(self, result: dict, dims: int | None = None) -> list[str]:
        """The lines of format_report for this measure's keys in `result` (its own `lines` where it
        registered them, else one line per key: its label and value, with its standard error beside
        it where the key KEY_se is declared too)."""
        if self._lines is not None:
            return self._lines(result, dims)
        out = []
        for key in self.keys:
            if result.get(key) is None or (key.endswith("_se") and key[:-3] in self.keys):
                continue
            se = result.get(key + "_se") if key + "_se" in self.keys else None
            out.append(report_line(self.label(key), result[key], se))
        return out


def report_line(label: str, value, se=None, note: str = "") -> str:
    """One line of format_report: the label, the value (integers as they are, numbers to 3 decimals) and
    ± its standard error where finite."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        text = f"{value!s:>10}"
    elif isinstance(value, int):
        text = f"{value:10d}"
    else:
        text = f"{value:10.3f}"
    if isinstance(se, int | float) and not isinstance(se, bool) and math.isfinite(se):
        text += f" ± {se:.3f}"
    return f"  {label:<28}{text}{note}"


def register_measure(name: str, function: Callable | None = None, *, keys: Mapping[str, str],
                     units: str | Mapping[str, str] | None = None, needs: Iterable[str] = (),
                     shares: Iterable[str] = (), headline: Iterable[str] | None = None,
                     lines: Callable[[dict, int | None], list[str]] | None = None, replace: bool = False,
                     aliases=()):
    """Register a measure fn(model, x, *, seed, **options) -> {key: value} (a decorator without
    `function`; returns the registered Measure, callable as the function with its seeding).

    keys      key -> a short description of the value stored under it ("rate R"); the keys it may
              return (a key it cannot measure in an evaluation, it leaves out)
    units     the keys' units: one for every key ("nats"), or key -> units for some; none for counts
    needs     data besides x that it takes as keyword parameters of these names (INPUTS)
    shares    values it returns for the measures after it (`earlier`), not stored (e.g. per-example
              terms)
    headline  the keys a table of many runs shows (the report page's table, the model card's results;
              default: every key)
    lines     lines(result, dims) -> the lines format_report prints for it (default: one per key)
    """
    if function is None:
        return lambda target: register_measure(name, target, keys=keys, units=units, needs=needs,
                                               shares=shares, headline=headline, lines=lines,
                                               replace=replace, aliases=aliases)
    measure = _declare(name, function, keys, units, needs, shares, headline, lines)
    MEASURES.load_builtins()   # rdvae's own first, so that they keep their place (and their keys)
    for other_name, other in MEASURES.items():
        if other_name == name or not isinstance(other, Measure):
            continue
        clash = sorted(set(measure.keys) & set(other.keys))
        if clash:
            raise ConfigError(f"measure {name!r} declares key(s) {', '.join(clash)}, which measure "
                              f"{other_name!r} stores already; choose other key names")
    return MEASURES.register(name, measure, replace=replace, aliases=aliases)


def _declare(name, function, keys, units, needs, shares, headline, lines) -> Measure:
    """The Measure of a registration, every declaration checked (ConfigError naming what is wrong)."""
    where = f"register_measure({name!r})"
    if not callable(function):
        raise ConfigError(f"{where}: a measure is a function fn(model, x, *, seed, **options), got "
                          f"{type(function).__name__}")
    if not isinstance(keys, Mapping) or not keys or not all(
            isinstance(k, str) and k.isidentifier() and isinstance(v, str) and v.strip()
            for k, v in keys.items()):
        raise ConfigError(f"{where}: keys must map each key it returns (an identifier, e.g. 'my_value') to "
                          f"a short description, got {keys!r}")
    keys = dict(keys)
    if units is None:
        units = {}
    elif isinstance(units, str):
        units = dict.fromkeys(keys, units)
    elif isinstance(units, Mapping) and all(isinstance(v, str) for v in units.values()):
        units = dict(units)
    else:
        raise ConfigError(f"{where}: units must be a string (the units of every key) or a mapping key -> "
                          f"units, got {units!r}")
    _subset(where, "units", units, keys)
    needs, shares = tuple(needs), tuple(shares)
    unknown = [n for n in needs if n not in INPUTS]
    if unknown:
        raise ConfigError(f"{where}: needs {unknown}; a measure may need {', '.join(INPUTS)}")
    overlap = [s for s in shares if s in keys or not isinstance(s, str)]
    if overlap:
        raise ConfigError(f"{where}: shares {overlap} must be names other than its keys (they are passed "
                          "on, not stored)")
    headline = tuple(keys) if headline is None else tuple(headline)
    _subset(where, "headline", headline, keys)
    measure = Measure(name, function, keys, units, needs, shares, headline, lines)
    if not all(p in measure.parameters for p in ("seed", *needs)) and not measure.accepts_any:
        missing = [p for p in ("seed", *needs) if p not in measure.parameters]
        raise ConfigError(f"{where}: its function must take fn(model, x, *, seed, **options) and a keyword "
                          f"parameter for each of its needs; {function.__qualname__} does not take "
                          f"{', '.join(missing)}")
    return measure


def _subset(where: str, what: str, given, keys: dict) -> None:
    stray = [k for k in given if k not in keys]
    if stray:
        raise ConfigError(f"{where}: {what} names {stray}, which are not among its keys ({', '.join(keys)})")


# -- what is registered ------------------------------------------------------------------------------
def measure_options(name: str) -> dict[str, Any]:
    """The options of measure `name` with their defaults (inspect.Parameter.empty: required): its keyword
    parameters other than CONTEXT and its needs."""
    measure = MEASURES[name]
    return {k: v for k, v in MEASURES.options(name).items() if k not in CONTEXT and k not in measure.needs}


def measure_keys() -> list[str]:
    """Every key of every registered measure, in registry order."""
    return [key for _, measure in MEASURES.items() for key in measure.keys]


def headline_keys() -> list[str]:
    """The headline keys of every registered measure, in registry order."""
    return [key for _, measure in MEASURES.items() for key in measure.headline]


def shown_keys(records: Iterable[Mapping], exclude: Iterable[str] = ()) -> tuple[list[str], list[str]]:
    """What a table of runs (a report page, a model card) shows of their measurements: the headline keys
    of the registered measures that some record holds, in registry order; and the keys that hold a number
    in some record, that no registered measure declares and that `exclude` does not name (e.g. a plugin's
    measure that this process has not imported), in the order first seen."""
    records = list(records)
    held = dict.fromkeys(k for record in records for k, v in record.items() if v is not None)
    headline = [k for k in headline_keys() if k in held]
    declared, exclude = set(measure_keys()), set(exclude)
    other = [k for k in held if k not in declared and k not in exclude and any(
        isinstance(r.get(k), int | float) and not isinstance(r.get(k), bool) for r in records)]
    return headline, other


def key_owner(key: str) -> Measure | None:
    """The registered measure that declares `key` (None: none does)."""
    for _, measure in MEASURES.items():
        if key in measure.keys:
            return measure
    return None


def key_label(key: str) -> str:
    """A key's description with its units ('rate R (nats)'); the key itself when no measure declares it."""
    owner = key_owner(key)
    return key if owner is None else owner.label(key)


# -- planning and running an evaluation --------------------------------------------------------------
@dataclass(frozen=True)
class Planned:
    """One measure of an evaluation with its checked options."""

    measure: Measure
    options: dict


def plan_measures(measures: Mapping[str, Mapping | None] | Iterable[str]) -> list[Planned]:
    """The measures of an evaluation, `measures` (name -> options, or names), checked and in registry
    order: unknown names and options, options of the wrong kind, required options not given and the
    evaluation's own settings given as options are ConfigErrors naming them."""
    if isinstance(measures, str) or not isinstance(measures, Mapping | Iterable):
        raise ConfigError(f"measures must be a mapping name -> options (or a list of names), got "
                          f"{measures!r}")
    given = dict(measures) if isinstance(measures, Mapping) else dict.fromkeys(measures)
    chosen: dict[str, dict] = {}
    for name, options in given.items():
        if not isinstance(name, str):
            raise ConfigError(f"a measure is named by a string, got {name!r}")
        measure = MEASURES[name]   # unknown: ConfigError with the registered names (and a did-you-mean)
        canonical = MEASURES.canonical(name)
        if canonical in chosen:
            raise ConfigError(f"measure {canonical!r} is given twice (as {name!r}); give its options once")
        options = {} if options is None else options
        if not isinstance(options, Mapping):
            raise ConfigError(f"the options of measure {name!r} must be a mapping KEY -> VALUE, got "
                              f"{options!r}")
        options = dict(options)
        own = [k for k in options if k in CONTEXT or k in measure.needs]
        if own:
            raise ConfigError(f"measure {name!r}: {', '.join(own)} are set by the evaluation (its seed, "
                              "batch size, precision, progress, data), not options")
        accepted = measure_options(canonical)
        unknown = [k for k in options if k not in accepted]
        if unknown and "**" not in accepted:
            raise unknown_names("measure option(s)", unknown, [k for k in accepted if k != "**"],
                                f" of {canonical!r}")
        for key, value in options.items():
            if key in accepted:
                check_option_value(f"measure {canonical!r}", key, value, accepted[key])
        missing = [k for k, v in accepted.items() if v is inspect.Parameter.empty and k not in options]
        if missing:
            raise ConfigError(f"measure {name!r} needs option(s) {', '.join(missing)} (e.g. --measure-option "
                              f"{canonical}.{missing[0]}=VALUE); its options: {_shown(accepted)}")
        chosen[canonical] = options
    order = {name: i for i, name in enumerate(MEASURES.names())}
    return [Planned(MEASURES[name], chosen[name]) for name in sorted(chosen, key=order.__getitem__)]


def _shown(options: dict) -> str:
    shown = [k if v is inspect.Parameter.empty else f"{k}={v!r}" for k, v in options.items() if k != "**"]
    return ", ".join(shown) or "none"


def check_data(x: torch.Tensor) -> None:
    """EvaluationError for data holding non-finite values."""
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise EvaluationError(f"the data to evaluate holds {bad} non-finite values (NaN or infinity)")


def run_measures(model, x: torch.Tensor, measures: Mapping[str, Mapping | None] | Iterable[str], *,
                 seed: int = 0, batch_size: int = 1000, precision: str = "fp32", progress: bool = False,
                 inputs: Mapping[str, Any] | None = None) -> dict:
    """Measure `model` (put in eval mode) on the examples x with `measures` (name -> options): every key
    they store, in registry order, drawn from one torch random stream seeded with `seed`. `inputs`: the
    data the measures need (INPUTS; a measure whose need is missing or None is a ConfigError)."""
    planned = plan_measures(measures)
    _check_settings(seed, batch_size, precision)
    inputs = dict(inputs or {})
    check_needs(planned, inputs)
    check_data(x)
    model.eval()
    context = {"seed": seed, "batch_size": batch_size, "precision": precision, "progress": progress}
    stored: dict = {}
    earlier: dict = {}
    with seeded(seed, model_device(model)):
        run_in_order(model, x, planned, context, inputs, earlier, stored)
    return stored


def check_needs(planned, inputs: Mapping) -> None:
    """A ConfigError for the first planned measure whose declared need is missing from `inputs`."""
    for step in planned:
        for need in step.measure.needs:
            if inputs.get(need) is None:
                raise ConfigError(f"measure {step.measure.name!r} needs {need} ({INPUTS[need]}), which this "
                                  "evaluation does not have")


def run_in_order(model, x: torch.Tensor, planned, context: dict, inputs: Mapping, earlier: dict,
                 stored: dict) -> None:
    """The planned measures one after the other on the caller's random stream: each given the context
    its signature names, what the ones before it returned (`earlier`, updated) and its needs; what
    they declare as keys goes to `stored`."""
    for step in planned:
        measure = step.measure
        arguments = {k: v for k, v in context.items() if measure.takes(k)}
        if measure.takes("earlier"):
            arguments["earlier"] = MappingProxyType(dict(earlier))
        arguments.update({need: inputs[need] for need in measure.needs})
        arguments["seed"] = context["seed"]
        returned = call_measure(measure, model, x, arguments, step.options)
        earlier.update(returned)
        stored.update({k: v for k, v in returned.items() if k in measure.keys})


def call_measure(measure: Measure, model, x, arguments: dict, options: dict) -> dict:
    """The function of `measure` called (unseeded: the caller's stream) and what it returns checked: a
    dict of its declared keys and shares, keys holding numbers, strings, booleans or None. A ValueError or
    TypeError it raises (other than EvaluationError) becomes a ConfigError naming it."""
    try:
        returned = measure.function(model, x, **arguments, **options)
    except (EvaluationError, ConfigError):
        raise
    except (ValueError, TypeError) as err:
        given = ", ".join(f"{k}={v!r}" for k, v in options.items())
        raise ConfigError(f"measure {measure.name!r}{f' ({given})' if given else ''}: {err}") from err
    if not isinstance(returned, Mapping):
        raise ConfigError(f"measure {measure.name!r} returned {type(returned).__name__}; a measure returns a "
                          "dict of the keys it declares")
    stray = [k for k in returned if k not in measure.keys and k not in measure.shares]
    if stray:
        raise ConfigError(f"measure {measure.name!r} returned {stray}, which it does not declare; declare "
                          f"them in register_measure(keys=...) (or shares=... for values passed on, not "
                          f"stored); its keys: {', '.join(measure.keys)}")
    for key in measure.keys:
        value = returned.get(key)
        if value is not None and not isinstance(value, bool | int | float | str):
            raise ConfigError(f"measure {measure.name!r} returned {key} = {value!r:.80}; a key holds a "
                              "number, a string, a boolean or None (a tensor's .item())")
    return dict(returned)


def _check_settings(seed, batch_size, precision) -> None:
    def integer(value, low):
        return isinstance(value, int) and not isinstance(value, bool) and value >= low

    if not integer(seed, 0) or seed > SEED_MAX:
        raise ConfigError(f"the evaluation's seed must be an integer in [0, {SEED_MAX}], got {seed!r}")
    if not integer(batch_size, 1):
        raise ConfigError(f"the evaluation's batch_size must be an integer >= 1, got {batch_size!r}")
    if precision not in PRECISIONS:
        raise ConfigError(f"the evaluation's precision must be one of {', '.join(PRECISIONS)}, got "
                          f"{precision!r}")
