"""What a sweep is: base settings plus grid points, each point one ordinary training run.

Saved as ``sweep.json`` in the sweep directory, so running ``rdvae sweep --out DIR`` again
continues the same sweep. A spec file (JSON or TOML) reads:

    [base]                      # settings shared by every run (any TrainConfig field)
    dataset = "binarized-mnist"
    epochs = 3
    "model.hidden" = [256, 128]

    [grid]                      # the product of these axes
    family = ["mlp", "mlp-v"]
    beta = [0.1, 0.3, 1, 3, 10]

    [[zip]]                     # optional: axes taken side by side, multiplied into the grid
    lr = [1e-3, 3e-4]
    seed = [0, 1]
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..plugins import record_paths, recorded_plugins
from ..rundir import loads_bounded, write_json
from ..train import TrainConfig
from ..train.config import nest_model_options
from .grid import GridError, Point, product, sweep, value_text, zipit

SPEC_FILE = "sweep.json"
RUNS_FOLDER = "runs"


class SweepError(ValueError):
    """A sweep that cannot be set up or continued, with what to change."""


def _slug(point: Point) -> str:
    text = "_".join(f"{k.removeprefix('model.')}={value_text(v)}" for k, v in point.items())
    return re.sub(r"[^A-Za-z0-9.=+-]+", "_", text).strip("_")[:80]


def check_run_name(name: str) -> str:
    """A run's folder name inside the sweep's runs folder: one plain path component (no separator, no
    '.' or '..', no control character), so that no run is written outside the sweep folder."""
    bad = (not name or len(name) > 200 or name in (".", "..") or any(c in name for c in "/\\")
           or any(ord(c) < 32 or ord(c) == 127 for c in name) or Path(name).is_absolute())
    if bad:
        raise SweepError(f"sweep run name {name!r} is not allowed: a run name is one folder name of at "
                         "most 200 characters, without '/', '\\', control characters, and not '.' or '..'; "
                         "fix the names in sweep.json (or start the sweep in a new --out)")
    return name


@dataclass
class SweepSpec:
    base: dict = field(default_factory=dict)
    points: list[Point] = field(default_factory=lambda: [{}])
    names: list[str] = field(default_factory=list)

    def __post_init__(self):
        if not self.points:
            raise SweepError("the sweep has no grid points")
        if not self.names:
            width = max(3, len(str(len(self.points) - 1)))
            self.names = [f"{i:0{width}d}-{_slug(p)}".rstrip("-") for i, p in enumerate(self.points)]
        if len(self.names) != len(self.points) or len(set(self.names)) != len(self.names):
            raise SweepError("sweep.json is inconsistent: run names must be unique, one per point")
        for name in self.names:
            check_run_name(name)

    @property
    def swept_fields(self) -> list[str]:
        """Field names varied by the grid, in first-seen order."""
        seen: dict[str, None] = {}
        for point in self.points:
            seen.update(dict.fromkeys(point))
        return list(seen)

    def settings(self, index: int) -> dict:
        """Flat settings of point `index`: base overridden by the point."""
        return {**self.base, **self.points[index]}

    def config(self, index: int) -> TrainConfig:
        """The TrainConfig of point `index` (ConfigError if the point is invalid)."""
        return TrainConfig.from_dict(nest_model_options(self.settings(index)))

    def to_dict(self) -> dict:
        # sweep.json is written with sorted keys: "fields" keeps the grid's column order
        return {"base": self.base, "points": self.points, "names": self.names,
                "fields": self.swept_fields}

    @classmethod
    def from_dict(cls, data: dict) -> SweepSpec:
        unknown = set(data) - {"base", "points", "names", "fields", "grid", "zip"}
        if unknown:
            raise SweepError(f"unknown sweep spec key(s) {sorted(unknown)}; expected base, grid, zip "
                             "or points")
        def mapping(value, what: str) -> dict:
            if value is None:
                return {}
            if not isinstance(value, dict):
                raise SweepError(f"sweep spec: {what} must be a table (mapping), got {value!r}")
            return value

        base = dict(mapping(data.get("base"), "base"))
        grid = mapping(data.get("grid"), "grid")
        zips = data.get("zip") or []
        zips = [zips] if isinstance(zips, dict) else zips
        if not isinstance(zips, list) or not all(isinstance(z, dict) for z in zips):
            raise SweepError(f"sweep spec: zip must be a list of tables of axes, got {data.get('zip')!r}")
        if "points" in data and not (isinstance(data["points"], list)
                                     and all(isinstance(p, dict) for p in data["points"])):
            raise SweepError(f"sweep spec: points must be a list of tables, got {data['points']!r}")
        names = data.get("names") or []
        if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise SweepError(f"sweep spec: names must be a list of strings, got {names!r}")
        if "points" in data:
            rank = {name: i for i, name in enumerate(data.get("fields") or [])}
            points = [dict(sorted(p.items(), key=lambda kv: rank.get(kv[0], len(rank))))
                      for p in data["points"]]
        else:
            grids = [sweep(k, v if isinstance(v, list) else [v]) for k, v in grid.items()]
            grids += [zipit(*(sweep(k, v if isinstance(v, list) else [v]) for k, v in z.items()))
                      for z in zips]
            points = product(*grids)
        return cls(base=base, points=points, names=list(names))

    @classmethod
    def from_file(cls, path: str | Path) -> SweepSpec:
        path = Path(path)
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "does not exist"
            raise SweepError(f"sweep spec file {path} {what}")
        try:
            if path.suffix == ".toml":
                try:
                    import tomllib
                except ImportError:  # Python 3.10
                    raise SweepError(f"reading {path} needs Python >= 3.11 (tomllib); write the spec "
                                     "as JSON instead") from None

                data = loads_bounded(path.read_text(), f"sweep spec {path}", parse=tomllib.loads)
            else:
                data = loads_bounded(path.read_text(), f"sweep spec {path}")
        except ConfigError as err:   # nested deeper than MAX_JSON_DEPTH
            raise SweepError(str(err)) from None
        except (ValueError, GridError, OSError) as err:
            raise SweepError(f"cannot read sweep spec {path}: {err}") from None
        if not isinstance(data, dict):
            raise SweepError(f"sweep spec {path} must hold a table (JSON object), got {type(data).__name__}")
        return cls.from_dict(data)


def _plugin_lists(spec: SweepSpec) -> list[dict]:
    """The mappings of a spec (its base and points) that name plugins."""
    return [m for m in (spec.base, *spec.points) if "plugins" in m]


def save_spec(out: Path, spec: SweepSpec) -> None:
    """sweep.json: plugin files by their path relative to the sweep folder."""
    data = spec.to_dict()
    data["base"] = dict(spec.base)
    data["points"] = [dict(p) for p in spec.points]
    for mapping in (data["base"], *data["points"]):
        if isinstance(mapping.get("plugins"), list) and all(isinstance(s, str) for s in mapping["plugins"]):
            mapping["plugins"] = record_paths(mapping["plugins"], out)
    write_json(Path(out) / SPEC_FILE, data)


def allow_plugins(out: Path, spec: SweepSpec) -> None:
    """Import the plugins a saved sweep.json names, as rdvae.plugins.recorded_plugins allows (named
    again with --plugin, or trusted; files relative to the sweep folder), and name them by their
    resolved paths in `spec`."""
    for mapping in _plugin_lists(spec):
        mapping["plugins"], _ = recorded_plugins(mapping["plugins"], out, what=f"sweep {out}")


def load_spec(out: Path) -> SweepSpec | None:
    path = Path(out) / SPEC_FILE
    if not path.exists():
        return None
    try:
        data = loads_bounded(path.read_text(), str(path))
    except ConfigError as err:   # nested deeper than MAX_JSON_DEPTH
        raise SweepError(f"{err}; restore it or start the sweep in a new --out") from None
    except (ValueError, OSError) as err:
        raise SweepError(f"{path} cannot be read ({err}); restore it or start the sweep in a new "
                         "--out") from None
    if not isinstance(data, dict):
        raise SweepError(f"{path} must hold a JSON object; restore it or start the sweep in a new --out")
    return SweepSpec.from_dict(data)


def resolve_spec(out: Path, spec: SweepSpec | None) -> SweepSpec:
    """The spec to run in `out`: the given one (saved on first use) or the saved one. A given
    spec that differs from the saved one is refused rather than mixed into the same table."""
    saved = load_spec(out)
    if saved is not None:
        allow_plugins(out, saved)
    if spec is None:
        if saved is None:
            raise SweepError(f"{out} holds no {SPEC_FILE}: give a grid (--grid/--config) to start a sweep")
        return saved
    if saved is not None and _canonical(saved) != _canonical(spec):
        raise SweepError(
            f"{out} already holds a different sweep ({Path(out) / SPEC_FILE}); run `rdvae sweep --out "
            f"{out}` alone to continue it, or choose a new --out for the new grid")
    if saved is None:
        save_spec(out, spec)
    return saved or spec


def _canonical(spec: SweepSpec) -> str:
    return json.dumps(json.loads(json.dumps({"base": spec.base, "points": spec.points})), sort_keys=True)
