"""`rdvae list KIND`: what is registered (rdvae's own and the plugins'), one line each with its options."""

from __future__ import annotations

import inspect

from .options import add_common

KINDS = ("families", "encoders", "decoders", "marginals", "models", "datasets", "objectives", "executors",
         "optimizers", "measures", "repros", "config")


def register(sub) -> None:
    p = sub.add_parser("list",
                       help="list registered families, components, datasets, objectives, executors, "
                            "optimizers, measures, reproductions, or the run config's fields",
                       description="Print what exists, one line each: name, description and options with "
                                   "their defaults (options are set with --set model.NAME=VALUE, "
                                   "data.NAME=VALUE, objective_options.NAME=VALUE or "
                                   "optimizer_options.NAME=VALUE; a measure's with rdvae eval "
                                   "--measure-option NAME.KEY=VALUE), and for measures the keys they store.")
    p.add_argument("kind", nargs="?", choices=KINDS, default="families",
                   help="what to list (default: families)")
    add_common(p, out=False)
    p.set_defaults(handler=run)


def _options(options: dict) -> str:
    shown = [k if v is inspect.Parameter.empty else f"{k}={v!r}" for k, v in options.items() if k != "**"]
    if "**" in options:
        shown.append("**options")
    return ", ".join(shown) or "-"


def _summary(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.split("\n\n")[0].replace("\n", " ")


def rows(kind: str) -> list[dict]:
    from .. import registry

    if kind == "repros":
        return [{"name": name, "description": study.description,
                 "options": "--scale " + "|".join(study.scales)} for name, study in registry.STUDIES.items()]
    if kind == "families":
        from ..presets import resolve_family

        out = []
        for name, family in registry.FAMILIES.items():
            parts = (f"{family.encoder} / {family.decoder} / {family.marginal}, {family.model}, "
                     f"d={family.latent_dim}")
            out.append({"name": name, "description": f"{family.description} [{parts}]",
                        "options": _options(resolve_family(name).options())})
        return out
    if kind == "datasets":
        from ..data import dataset_options

        return [{"name": name, "description": _summary(loader), "options": _options(dataset_options(name))}
                for name, loader in registry.DATASETS.items()]
    if kind == "executors":
        from ..sweep.executors import CONTEXT, EXECUTORS

        return [{"name": name, "description": _summary(run),
                 "options": _options({k: v for k, v in EXECUTORS.options(name).items() if k not in CONTEXT})}
                for name, run in EXECUTORS.items()]
    if kind == "optimizers":
        from ..engine.optimizers import OPTIMIZERS

        return [{"name": name, "description": _summary(build), "options": _options(OPTIMIZERS.options(name))}
                for name, build in OPTIMIZERS.items()]
    if kind == "config":   # the fields of a run's config.json (rdvae train's flags and --set KEY=VALUE)
        from ..train.config import config_field_rows

        return config_field_rows()
    if kind == "measures":
        from ..evaluate.measures import MEASURES, measure_options

        return [{"name": name, "description": _summary(measure), "options": _options(measure_options(name)),
                 "keys": {key: measure.label(key) for key in measure.keys},
                 "needs": list(measure.needs)}
                for name, measure in MEASURES.items()]
    table = getattr(registry, kind.upper())
    return [{"name": name, "description": _summary(obj), "options": _options(table.options(name))}
            for name, obj in table.items()]


def run(args) -> dict:
    found = rows(args.kind)
    width = max((len(r["name"]) for r in found), default=4)
    for r in found:
        print(f"  {r['name']:<{width}}  {r['description']}")
        print(f"  {'':<{width}}    options: {r['options']}")
        if r.get("needs"):
            print(f"  {'':<{width}}    needs: {', '.join(r['needs'])}")
        if "keys" in r:
            print(f"  {'':<{width}}    keys: {', '.join(r['keys'])}")
    return {args.kind: found}
