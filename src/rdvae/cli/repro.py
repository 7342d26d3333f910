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
    if args.workers is not None:
        if "workers" not in inspect.signature(available[args.name].run).parameters:
            raise UserError(f"reproduction {args.name!r} trains no grid of runs, so --workers does not "
                            "apply; "
                            "drop it")
        options["workers"] = args.workers
    result = available[args.name].run(scale, out, progress=args.progress, **options)
    print(f"results written to {out}")
    return result
