"""Grids of configurations in one readable line (after disentanglement_lib's sweep helpers).

A grid is a list of points; a point is a dict mapping config field names (``beta``,
``family``, ``model.hidden``, ...) to values.

    product(sweep("family", ["mlp", "mlp-v"]), sweep("beta", [0.1, 1, 10]))   # 6 points
    zipit(sweep("beta", [0.5, 1]), sweep("seed", [0, 1]))                     # 2 points
    chainit(product(...), fixed("beta", 1.0))                                 # one after another

On the command line a grid axis is written ``KEY=V1,V2,...`` (values parsed as JSON where
they are valid JSON, so ``model.hidden=[64,64],[128]`` gives two lists) and zipped axes are
joined with ``;``: ``beta=0.5,1;seed=0,1``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence

Point = dict
Grid = list


class GridError(ValueError):
    """A grid that cannot be built, with what to change."""


def sweep(name: str, values: Iterable) -> Grid:
    """One axis: a point per value of field `name`."""
    values = list(values)
    if not values:
        raise GridError(f"sweep over {name!r} has no values")
    return [{name: v} for v in values]


def fixed(name: str, value) -> Grid:
    """A one-point grid setting `name` to `value`."""
    return [{name: value}]


def _merge(points: Sequence[Point]) -> Point:
    merged: Point = {}
    for point in points:
        clash = set(merged) & set(point)
        if clash:
            raise GridError(f"field(s) {sorted(clash)} set by more than one axis of the grid")
        merged.update(point)
    return merged


def product(*grids: Grid) -> Grid:
    """Every combination of the grids' points (the last grid varies fastest)."""
    if not grids:
        return [{}]
    return [_merge(combo) for combo in itertools.product(*grids)]


def zipit(*grids: Grid) -> Grid:
    """Points taken side by side: the i-th point of each grid merged; lengths must agree."""
    if not grids:
        return [{}]
    lengths = {len(g) for g in grids}
    if len(lengths) != 1:
        raise GridError(f"zipped axes must have the same number of values, got lengths "
                        f"{[len(g) for g in grids]}")
    return [_merge(points) for points in zip(*grids, strict=True)]


def chainit(*grids: Grid) -> Grid:
    """The grids' points one after another."""
    return [dict(p) for g in grids for p in g]


def parse_value(text: str, what: str = "a grid value"):
    """A JSON value where `text` is valid JSON, else the string itself (so ``mlp-v`` stays a
    string, ``0.3`` is a float and ``[64,64]`` a list); GridError when it nests deeper than
    rdvae.rundir.MAX_JSON_DEPTH levels."""
    from ..errors import ConfigError
    from ..rundir import loads_bounded

    text = text.strip()
    try:
        return loads_bounded(text, what)
    except json.JSONDecodeError:
        return text
    except ConfigError as err:
        raise GridError(str(err)) from None


def split_top_level(text: str, sep: str) -> list[str]:
    """Split on `sep` outside brackets and quotes: ``[1,2],[3]`` -> ``['[1,2]', '[3]']``."""
    parts, depth, quote, current = [], 0, None, []
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == sep and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def parse_axis(text: str) -> Grid:
    """``KEY=V1,V2,...`` -> sweep(KEY, [V1, V2, ...])."""
    if "=" not in text:
        raise GridError(f"grid axis {text!r}: expected KEY=V1,V2,... (e.g. beta=0.1,1,10)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise GridError(f"grid axis {text!r} has no field name before '='")
    values = [parse_value(v, f"--grid {key[:60]}") for v in split_top_level(raw, ",") if v.strip()]
    if not values:
        raise GridError(f"grid axis {text!r} has no values after '='")
    return sweep(key, values)


def parse_grid(axes: Sequence[str]) -> Grid:
    """The product of command-line axes; an axis holding ``;`` zips its parts:
    ``["family=mlp,mlp-v", "beta=0.5,1;seed=0,1"]`` -> 2 x 2 = 4 points."""
    grids = []
    for axis in axes:
        parts = [p for p in split_top_level(axis, ";") if p.strip()]
        grids.append(zipit(*(parse_axis(p) for p in parts)))
    return product(*grids)


def describe_point(point: Point) -> str:
    """A short readable label: ``family=mlp-v beta=0.3``."""
    return " ".join(f"{k}={value_text(v)}" for k, v in point.items())


def value_text(value) -> str:
    """A grid value as text: floats as %g, strings as they are, anything else as compact JSON."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))
