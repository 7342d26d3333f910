"""Plugins: modules that register the user's own encoders, decoders, marginals, families, datasets
or objectives (rdvae.registry). Named on the command line with `--plugin MODULE_OR_FILE.py` (every
command takes it) or found through the entry-point group `rdvae.plugins`:

    # pyproject.toml of the user's package
    [project.entry-points."rdvae.plugins"]
    mine = "my_package.rdvae_plugin"      # a module (importing it registers), or module:function

A run's config.json records the `--plugin`s it was trained with (files by absolute path), and every
later command that reads the config (eval, --resume, sweep workers, Ray workers, plot) imports them
again before it looks anything up; one that cannot be imported is a PluginError naming it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path

from .errors import ConfigError

ENTRY_POINT_GROUP = "rdvae.plugins"
_entry_points_loaded = False


class PluginError(ConfigError):
    """A plugin that cannot be found or imported."""


def is_plugin_file(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or "\\" in spec


def canonical_plugin(spec: str) -> str:
    """What config.json records for a plugin: a file's absolute path, or the module name."""
    if not isinstance(spec, str) or not spec.strip():
        raise PluginError(f"a plugin is a module name or a .py file, got {spec!r}")
    spec = spec.strip()
    return str(Path(spec).expanduser().resolve()) if is_plugin_file(spec) else spec


def load_plugin(spec: str) -> str:
    """Import one plugin (a module name or a .py file; once per process); returns its canonical name."""
    name = canonical_plugin(spec)
    try:
        if is_plugin_file(name):
            _import_file(Path(name))
        else:
            importlib.import_module(name)
    except PluginError:
        raise
    except ModuleNotFoundError as err:
        if is_plugin_file(name) or (err.name and name.startswith(err.name)):
            raise PluginError(f"plugin {name!r} not found ({err}); install the package that provides "
                              "it, or pass its file with --plugin PATH.py") from None
        raise PluginError(f"plugin {name!r} failed to import: {type(err).__name__}: {err}") from err
    except ConfigError as err:
        raise PluginError(f"plugin {name!r}: {err}") from err
    except Exception as err:  # noqa: BLE001 - the plugin's own bug, reported by name
        raise PluginError(f"plugin {name!r} failed to import: {type(err).__name__}: {err} "
                          f"(run `python {name}` to see where)" if is_plugin_file(name) else
                          f"plugin {name!r} failed to import: {type(err).__name__}: {err}") from err
    return name


def load_plugins(specs) -> list[str]:
    """Import every plugin of a list; returns their canonical names (what config.json records)."""
    if specs is None:
        return []
    if isinstance(specs, str) or not all(isinstance(s, str) for s in specs):
        raise PluginError(f"plugins must be a list of module names or .py files, got {specs!r}")
    return [load_plugin(spec) for spec in specs]


def _import_file(path: Path) -> None:
    if not path.is_file():
        raise PluginError(f"plugin file {path} does not exist; pass the path of a .py file that "
                          "registers your components (or the name of an installed module)")
    module_name = f"rdvae_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"
    if module_name in sys.modules or _already_imported(path):
        return
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"plugin file {path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise


def _already_imported(path: Path) -> bool:
    """Whether the file runs already under another name (as the __main__ script, or imported by
    module name): importing it again would register everything twice."""
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve() == path:
            return True
    return False


def load_entry_point_plugins() -> list[str]:
    """Import the plugins of the `rdvae.plugins` entry-point group (once per process)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return []
    _entry_points_loaded = True
    loaded = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            target = ep.load()
        except Exception as err:  # noqa: BLE001 - named, not a traceback
            raise PluginError(f"plugin {ep.name!r} ({ep.value}) of entry-point group "
                              f"{ENTRY_POINT_GROUP!r} failed to import: {type(err).__name__}: {err}") from err
        if callable(target) and not isinstance(target, type(sys)):
            target()
        loaded.append(ep.value)
    return loaded
