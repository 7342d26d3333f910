"""Plugins: modules that register the user's own encoders, decoders, marginals, families, datasets
or objectives (rdvae.registry). Named on the command line with `--plugin MODULE_OR_FILE.py` (every
command takes it) or found through the entry-point group `rdvae.plugins`:

    # pyproject.toml of the user's package
    [project.entry-points."rdvae.plugins"]
    mine = "my_package.rdvae_plugin"      # a module (importing it registers), or module:function

A run's config.json records the `--plugin`s it was trained with (files by their path relative to the
run folder, modules by name) and each one's fingerprint: the file's SHA-256, or an installed module's
file SHA-256 and its distribution's version. A run folder is something people send each other, so
opening one never imports the code it names unasked (`recorded_plugins`): a recorded plugin is imported
only when the user names it again with `--plugin` (which also replaces a recorded plugin of the same
module name, e.g. a file that moved), when this process has imported it already, or when the user trusts
what run folders name (`--trust-plugins`, or RDVAE_TRUST_PLUGINS=1). A plugin whose code changed since
the run recorded it is refused unless the change is accepted (`--accept-plugin-changes`).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

from .errors import ConfigError

ENTRY_POINT_GROUP = "rdvae.plugins"
TRUST_ENV = "RDVAE_TRUST_PLUGINS"
_entry_points_loaded = False
_named: dict[str, str] = {}      # module name -> canonical spec, of the plugins the user named (--plugin)
_imported_files: set[str] = set()   # plugin files imported by this process (absolute paths)
_trust_all = False
_accept_changes = False


class PluginError(ConfigError):
    """A plugin that cannot be found or imported."""


class PluginConsentError(PluginError):
    """A run or sweep folder names plugin code that the user has not allowed to run."""


class PluginChangedError(PluginError):
    """A plugin's code is not the code the run was made with."""


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


def load_plugins(specs, named: bool = False) -> list[str]:
    """Import every plugin of a list; returns their canonical names. `named`: the user names them (the
    command line's --plugin), so that they also replace recorded plugins of the same module name."""
    if specs is None:
        return []
    if isinstance(specs, str) or not all(isinstance(s, str) for s in specs):
        raise PluginError(f"plugins must be a list of module names or .py files, got {specs!r}")
    loaded = [load_plugin(spec) for spec in specs]
    if named:
        for name in loaded:
            _named[module_name(name)] = name
    return loaded


def trust_plugins(trust: bool = True) -> None:
    """Import the plugins that run and sweep folders name without asking (--trust-plugins)."""
    global _trust_all
    _trust_all = trust


def accept_plugin_changes(accept: bool = True) -> None:
    """Use plugins whose code changed since a run recorded them (--accept-plugin-changes)."""
    global _accept_changes
    _accept_changes = accept


def consent_state() -> dict:
    """What the user allowed in this process (--plugin names, --trust-plugins, --accept-plugin-changes),
    for the sweep's worker processes to allow the same (restore_consent)."""
    return {"named": dict(_named), "trust": _trust_all, "accept": _accept_changes}


def restore_consent(state: dict) -> None:
    """Allow in this process what consent_state recorded in another (a sweep's worker)."""
    global _trust_all, _accept_changes
    _named.update(state.get("named") or {})
    _trust_all = bool(state.get("trust"))
    _accept_changes = bool(state.get("accept"))


def forget_consent() -> None:
    """Forget --plugin names, --trust-plugins and --accept-plugin-changes (the end of a command)."""
    global _trust_all, _accept_changes
    _trust_all = _accept_changes = False
    _named.clear()


def trusted() -> bool:
    return _trust_all or os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes")


def module_name(spec: str) -> str:
    """The name a plugin is known by: a file's stem, or the module's dotted name."""
    return Path(spec).stem if is_plugin_file(spec) else spec


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.cache
def _packages_distributions() -> dict:
    from importlib.metadata import packages_distributions

    return packages_distributions()


def _distribution(module: str) -> str | None:
    """'name==version' of the installed distribution that provides a top-level module, if any."""
    from importlib.metadata import version

    try:
        names = _packages_distributions().get(module.partition(".")[0]) or []
        return f"{names[0]}=={version(names[0])}" if names else None
    except Exception:  # noqa: BLE001 - metadata of a broken install: no version to record
        return None


def fingerprint(spec: str) -> dict:
    """What identifies a plugin's code: {"sha256": the file's} for a file; for an imported module the
    SHA-256 of its file and "distribution": "name==version" where an installed one provides it."""
    if is_plugin_file(spec):
        return {"sha256": _sha256(Path(spec))}
    module = sys.modules.get(spec)
    file = getattr(module, "__file__", None)
    found: dict = {"sha256": _sha256(Path(file)) if file and Path(file).is_file() else None}
    dist = _distribution(spec)
    if dist:
        found["distribution"] = dist
    return found


def fingerprints(specs) -> dict[str, dict]:
    """Module name -> fingerprint of each plugin (imported); two plugins of one module name are refused."""
    found: dict[str, dict] = {}
    for spec in specs:
        name = module_name(spec)
        if name in found:
            same = ", ".join(s for s in specs if module_name(s) == name)
            raise PluginError(f"two plugins share the module name {name!r} ({same}); rename one of them "
                              "(a run records its plugins by module name)")
        found[name] = fingerprint(spec)
    return found


def record_paths(specs, folder: str | os.PathLike) -> list[str]:
    """Plugins as a folder's config records them: files relative to the folder (so that a project moved
    with its runs keeps them), or absolute where the two share no folder but the root; modules by name."""
    base = Path(folder).resolve()

    def recorded(spec: str) -> str:
        if not is_plugin_file(spec):
            return spec
        path = Path(spec).expanduser().resolve()   # a path given relative to the current directory
        shared = Path(os.path.commonpath([base, path]))
        return str(path) if shared == Path(shared.anchor) else os.path.relpath(path, base)

    return [recorded(spec) for spec in specs]


def is_imported(spec: str) -> bool:
    if is_plugin_file(spec):
        return spec in _imported_files or _already_imported(Path(spec))
    return spec in sys.modules


def _short(digest) -> str:
    return f"{digest[:12]}..." if isinstance(digest, str) else "unknown"


def recorded_plugins(specs, folder: str | os.PathLike, recorded: dict | None = None,
                     accept_changes: bool = False, what: str | None = None) -> tuple[list[str], list[str]]:
    """Import the plugins a run or sweep folder's config names, if the user allows it; returns their
    canonical names and the module names whose code changed (accepted with accept_changes).

    Files recorded by a relative path resolve against `folder`, never the current directory. A plugin
    the user named with --plugin replaces a recorded one of the same module name. A plugin that this
    process has not imported is imported only when trusted (--trust-plugins); otherwise one
    PluginConsentError lists what the folder wants to import and how to allow it. `recorded` (module
    name -> fingerprint) is checked against the code before it is imported: a difference is a
    PluginChangedError unless accept_changes."""
    if specs is None:
        return [], []
    if isinstance(specs, str) or not isinstance(specs, list) or not all(isinstance(s, str) and s.strip()
                                                                       for s in specs):
        raise PluginError(f"plugins must be a list of module names or .py files, got {specs!r}")
    base = Path(folder).resolve()
    what = what or str(folder)
    resolved = []
    for spec in specs:
        name = module_name(spec.strip())
        if name in _named:
            resolved.append(_named[name])
        elif is_plugin_file(spec):
            resolved.append(str((base / Path(spec.strip()).expanduser()).resolve()))
        else:
            resolved.append(spec.strip())
    missing = [s for s in resolved if is_plugin_file(s) and not Path(s).is_file()]
    if missing:
        raise PluginError(f"{what} was made with plugin file(s) that are not here: {', '.join(missing)}; "
                          "pass each one's new location with --plugin PATH.py (it replaces the recorded "
                          "plugin of the same module name)")
    unasked = [] if trusted() else [s for s in resolved if not is_imported(s)]
    if unasked:
        listed = ", ".join(f"{s} (SHA-256 {_short(_sha256(Path(s)))})" if is_plugin_file(s) else s
                           for s in unasked)
        raise PluginConsentError(
            f"{what} wants to import plugin code: {listed}; nothing was imported. Read it, then allow it "
            "with --plugin " + " --plugin ".join(unasked) + " (or --trust-plugins, or "
            f"{TRUST_ENV}=1, to import what run folders name)")
    changed: list[str] = []
    if recorded is not None and not isinstance(recorded, dict):
        raise PluginError(f"{what}: plugin_fingerprints must be a mapping of module names, got {recorded!r}")
    for spec in resolved:   # files before they are imported; modules once imported (their file is known)
        if is_plugin_file(spec):
            changed += _compare(spec, (recorded or {}).get(module_name(spec)), what, accept_changes)
    loaded = load_plugins(resolved)
    for spec in loaded:
        if not is_plugin_file(spec):
            changed += _compare(spec, (recorded or {}).get(module_name(spec)), what, accept_changes)
    return loaded, changed


def _compare(spec: str, recorded, what: str, accept_changes: bool) -> list[str]:
    if not isinstance(recorded, dict):
        return []   # recorded before fingerprints were kept: nothing to compare with
    now = fingerprint(spec)
    differs = [key for key in ("sha256", "distribution") if recorded.get(key) != now.get(key)
               and (key == "sha256" or recorded.get(key) is not None)]
    if not differs:
        return []
    if accept_changes or _accept_changes:
        return [module_name(spec)]
    def shown(key, value):
        return value if key == "distribution" else _short(value)

    details = "; ".join(f"{key} recorded {shown(key, recorded.get(key))}, now {shown(key, now.get(key))}"
                        for key in differs)
    raise PluginChangedError(
        f"plugin {spec} is not the code {what} was made with ({details}): its weights may describe "
        "another model now. Restore the plugin's code, or pass --accept-plugin-changes to use it as it "
        "is (the new fingerprint is then recorded)")


def _import_file(path: Path) -> None:
    if not path.is_file():
        raise PluginError(f"plugin file {path} does not exist; pass the path of a .py file that "
                          "registers your components (or the name of an installed module)")
    import_name = f"rdvae_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"
    if import_name in sys.modules or _already_imported(path):
        return
    spec = importlib.util.spec_from_file_location(import_name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"plugin file {path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[import_name] = module
    bytecode = sys.dont_write_bytecode
    sys.dont_write_bytecode = True   # no __pycache__ beside the file (it may lie in a folder being read)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[import_name]
        raise
    finally:
        sys.dont_write_bytecode = bytecode
    _imported_files.add(str(path))


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
