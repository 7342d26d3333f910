"""`rdvae plot SWEEP_DIR`: the RD plane, -ELBO vs R, reconstructions and samples of a sweep."""

from __future__ import annotations

from .options import add_common


def register(sub) -> None:
    p = sub.add_parser(
        "plot", help="draw a sweep's figures (RD plane, -ELBO vs R, reconstructions, samples)",
        description="Read SWEEP_DIR/results.csv (and the run directories for the image grids) and write "
                    "rd_plane, elbo_rate, reconstructions and samples as PNG and SVG into --out "
                    "(default SWEEP_DIR/figures).")
    p.add_argument("sweep_dir", metavar="SWEEP_DIR")
    p.add_argument("--runs", nargs="+", default=None, metavar="RUN",
                   help="run directory names for the image grids (default: up to --max-runs runs "
                        "of the Pareto frontier)")
    p.add_argument("--max-runs", type=int, default=6)
    p.add_argument("--examples", type=int, default=5, help="inputs in the reconstruction grid")
    p.add_argument("--z-draws", type=int, default=2, help="draws of z ~ e(z|x) per input")
    p.add_argument("--samples", type=int, default=8, help="draws of z ~ m(z) in the sample grid")
    p.add_argument("--format", dest="formats", nargs="+", default=["png", "svg"],
                   help="file formats (any matplotlib knows, e.g. png svg pdf)")
    p.add_argument("--over", metavar="SWEEP_DIR", default=None,
                   help="SWEEP_DIR here is a multi-rate run evaluated with `rdvae eval RUN --betas ...`: "
                        "also overlay its curve on the points of this separate beta sweep")
    p.add_argument("--no-grids", dest="grids", action="store_false",
                   help="only the RD plane and -ELBO vs R (no models loaded)")
    add_common(p, out_help="where the figures go (default: SWEEP_DIR/figures)")
    p.set_defaults(handler=run)


def run(args) -> dict:
    from ..plots import PlotError, plot_sweep
    from ..plots.multi_rate import plot_multi_rate_run
    from . import UserError

    for name in ("max_runs", "examples", "z_draws", "samples"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    try:
        result = plot_sweep(args.sweep_dir, out=args.out, runs=args.runs, max_runs=args.max_runs,
                            examples=args.examples, z_draws=args.z_draws, samples=args.samples,
                            formats=tuple(args.formats), grids=args.grids)
        if args.over:
            overlay = plot_multi_rate_run(args.sweep_dir, args.over, result["out"], args.formats)
            result["files"] += overlay["files"]
            result["comparison"] = overlay["comparison"]
    except PlotError as err:
        raise UserError(str(err)) from None
    for path in result["files"]:
        print(path)
    return result
