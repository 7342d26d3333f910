"""The API reference page, generated from the public names: `rdvae.__all__` (with the registries'
decorators, which are among them) and the few functions of subpackages that the guides use.

Each name becomes a mkdocstrings block (`::: module.Name`), rendered from its docstring and signature
by mkdocstrings' Python handler (static analysis of src/, nothing executed).
"""

from __future__ import annotations

# the order of the sections: the layers from the bottom up (DESIGN.md)
SECTIONS = [
    ("Errors", ("rdvae.errors",)),
    ("Data", ("rdvae.data",)),
    ("The model and its contract", ("rdvae.protocols", "rdvae.model")),
    ("Registries: bring your own", ()),   # every register_* name, wherever it lives
    ("Objectives", ("rdvae.objectives",)),
    ("Evaluation", ("rdvae.evaluate",)),
    ("The engine", ("rdvae.engine",)),
    ("Training", ("rdvae.train",)),
    ("Tracking", ("rdvae.tracking",)),
]

# public functions of subpackages that the guides call (not re-exported at the top level)
ALSO = {
    "rdvae.train": ["train"],
    "rdvae.sweep": ["SweepSpec", "run_sweep", "product", "sweep", "zipit"],
    "rdvae.plots": ["plot_sweep"],
    "rdvae.components": ["Marginal", "StandardNormal"],
    "rdvae.data.streaming": ["from_torch_dataset"],
    "rdvae.engine.optimizers": ["build_optimizer"],
    "rdvae.engine.callbacks": ["ModelSelection"],
    "rdvae.plugins": ["load_plugins", "trust_plugins"],
    "rdvae.presets": ["options_for"],
}


def exports() -> dict[str, str]:
    """name -> the module it lives in, for every name of rdvae.__all__."""
    import rdvae

    return {name: rdvae._EXPORTS[name] for name in rdvae.__all__}


def _registers(name: str) -> bool:
    return name.startswith("register_")


def defined_at(module: str, name: str) -> str:
    """Where `module.name` is defined (`rdvae.engine.fit` -> `rdvae.engine.loop.fit`): the packages
    re-export lazily (a module __getattr__), which static analysis cannot follow."""
    import importlib

    obj = getattr(importlib.import_module(module), name)
    home, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    return f"{home}.{qualname}" if home and qualname and "<" not in qualname else f"{module}.{name}"


def _block(path: str) -> list[str]:
    module, name = path.rsplit(".", 1)
    return [f"::: {defined_at(module, name)}", ""]


def api_markdown() -> str:
    names = exports()
    lines = [
        "# API reference",
        "",
        "Every name below `rdvae.__all__` is importable from the top level (`from rdvae import VAE`); "
        "the page is generated from their docstrings when the site is built. The registries' "
        "decorators (`register_*`) are how a plugin brings its own parts; "
        "[Your model, your data](../guides/your-model.md) shows them at work. The last section lists "
        "the functions of subpackages that the guides use.",
        "",
    ]
    done: set[str] = set()
    for title, modules in SECTIONS:
        if title.startswith("Registries"):
            chosen = [n for n in names if _registers(n)]
        else:
            chosen = [n for n in names if names[n] in modules and not _registers(n)]
        chosen = [n for n in chosen if n not in done]
        if not chosen:
            continue
        lines += [f"## {title}", ""]
        for name in sorted(chosen, key=lambda n: (names[n], list(names).index(n))):
            lines += _block(f"{names[name]}.{name}")
            done.add(name)
    rest = [n for n in names if n not in done]
    if rest:
        lines += ["## Other names", ""]
        for name in rest:
            lines += _block(f"{names[name]}.{name}")
    lines += ["## Used in the guides", "",
              "Not re-exported at the top level: import them from their modules.", ""]
    for module, members in ALSO.items():
        for member in members:
            lines += _block(f"{module}.{member}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(api_markdown())
