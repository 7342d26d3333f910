"""`rdvae repro NAME --scale smoke|cpu|paper --out DIR`: run a paper reproduction."""

from __future__ import annotations

import inspect
from pathlib import Path

from .options import add_common, positive_int


def register(sub) -> None:
    p = sub.add_parser("repro", help="reproduce a paper's experiment (tables beside the published numbers)")
    p.add_argument("name", nargs="?", help="which reproduction (omit to list them)")
    p.add_argument("--scale", default="cpu", choices=("smoke", "cpu", "paper"),
                   help="smoke (seconds), cpu (hours on 2 cores) or paper (GPU) (default: cpu)")
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
    add_common(p, out_help="where the results go (default: runs/repro-NAME-SCALE)")
    p.set_defaults(handler=run)


def run(args) -> dict:
    from ..experiments import check_scale, reproductions
    from . import UserError

    available = reproductions()
    if not args.name:
        for name, module in available.items():
            print(f"  {name:<20} {module.DESCRIPTION}")
        return {"reproductions": list(available)}
    if args.name not in available:
        raise UserError(f"unknown reproduction {args.name!r}; available: {', '.join(available) or 'none'}")
    try:
        scale = check_scale(args.scale)
    except ValueError as err:
        raise UserError(str(err)) from None
    out = Path(args.out or f"runs/repro-{args.name}-{scale}")
    options = {}
    accepted = inspect.signature(available[args.name].run).parameters
    for name, why in (("workers", "trains no grid of runs"), ("dataset", "uses the datasets its paper names"),
                      ("inception", "scores no images")):
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
    result = available[args.name].run(scale, out, progress=args.progress, **options)
    print(f"results written to {out}")
    return result
