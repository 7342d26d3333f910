"""`rdvae repro NAME --scale smoke|cpu|paper --out DIR`: run a paper's study.

The studies are those of the study registry (rdvae.registry.STUDIES): rdvae's own arrive through the
entry-point group `rdvae.plugins` like any installed plugin's, a user's through `--plugin FILE`
(`rdvae.register_study`); this command names none of them.
"""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

from .options import add_common, positive_int

# the command-line options a study's run may take, and why one that does not take it refuses it
RUN_OPTIONS = {"workers": "trains no grid of runs", "dataset": "uses the datasets its paper names",
               "inception": "scores no images", "stage": "has no separate stages"}


def listing() -> str:
    """One line per registered study: its name and description."""
    from ..registry import STUDIES

    return "\n".join(f"  {name:<20} {study.description}" for name, study in STUDIES.items())


STUDIES_EPILOG = "studies: `rdvae repro` lists them (and those of --plugin files)"


class StudiesHelp(argparse.RawDescriptionHelpFormatter):
    """The help of `rdvae repro` ends with the studies registered, looked up when the help is shown (so
    that building the parser imports no study; a usage error lists none)."""

    def add_text(self, text) -> None:
        if text == STUDIES_EPILOG:
            from ..errors import ConfigError

            try:
                text = "studies (and those of --plugin files: rdvae repro --plugin FILE):\n" + listing()
            except ConfigError as err:   # e.g. an installed plugin that fails to import: said, not raised
                text = f"studies: they could not be listed: {' '.join(str(err).split())}"
        super().add_text(text)


def register(sub) -> None:
    p = sub.add_parser("repro", help="reproduce a paper's experiment (tables beside the published numbers)",
                       formatter_class=StudiesHelp, epilog=STUDIES_EPILOG)
    p.add_argument("name", nargs="?", help="which study (omit to list them)")
    p.add_argument("--scale", default="cpu", metavar="SCALE",
                   help="smoke (seconds), cpu (hours on 2 cores) or paper (GPU), or another scale the study "
                        "has (default: cpu)")
    p.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="training processes side by side, the threads split between them, for reproductions "
                        "that train a grid of runs (broken-elbo); an interrupted grid continues where it "
                        "stopped when the command is run again (default: 1, one run after another)")
    p.add_argument("--dataset", default=None, metavar="NAME_OR_PATH",
                   help="train on this dataset instead of the scale's (a registered name or a data path), "
                        "for reproductions that take one (gan-decoder; its paper scale needs the CelebA "
                        "image folder)")
    p.add_argument("--inception", default=None, metavar="FILE",
                   help="a local TorchScript Inception network (e.g. inception-2015-12-05.pt) for FID "
                        "instead of rdvae's classifier features, for reproductions that take one "
                        "(gan-decoder)")
    p.add_argument("--stage", default=None, metavar="NAME",
                   help="run one named stage of a reproduction that has them, continuing it where it "
                        "stopped, so that long work can be done in parts (gan-decoder: gan, stage1-encoder, "
                        "stage2-joint, report; default every stage in order. broken-elbo: grid, corner, "
                        "unannealed; default grid)")
    add_common(p, out_help="where the results go (default: runs/repro-NAME-SCALE)")
    p.set_defaults(handler=run)


def run(args) -> dict:
    from ..errors import ConfigError
    from ..registry import STUDIES
    from . import UserError

    if not args.name:
        print(listing())
        return {"reproductions": STUDIES.names()}
    if args.name not in STUDIES:
        available = ", ".join(STUDIES.names()) or "none"
        raise UserError(f"unknown reproduction {args.name!r}; available: {available}")
    study = STUDIES[args.name]
    try:
        scale = study.check_scale(args.scale)
    except ConfigError as err:
        raise UserError(str(err)) from None
    out = Path(args.out or f"runs/repro-{args.name}-{scale}")
    options = {}
    accepted = inspect.signature(study.run).parameters
    for name, why in RUN_OPTIONS.items():
        value = getattr(args, name)
        if value is None:
            continue
        if name not in accepted:
            raise UserError(f"reproduction {args.name!r} {why}, so --{name} does not apply; drop it")
        options[name] = value
    if "inception" in options and not Path(options["inception"]).is_file():
        raise UserError(f"--inception {options['inception']}: no such file; give a TorchScript feature "
                        "network (rdvae downloads no weights), or drop the option to use rdvae's classifier "
                        "features")
    result = study.run(scale, out, progress=args.progress, **options)
    print(f"results written to {out}")
    return result
