"""`rdvae plot SWEEP_DIR`: the RD plane, -ELBO vs R, reconstructions and samples of a sweep."""

from __future__ import annotations

from .options import add_common, positive_int


def register(sub) -> None:
    p = sub.add_parser(
        "plot", help="draw a sweep's figures (RD plane, -ELBO vs R, reconstructions, samples)",
        description="Read SWEEP_DIR/results.csv (and the run directories for the image grids) and write "
                    "rd_plane, elbo_rate, reconstructions and samples as PNG and SVG into --out "
                    "(default SWEEP_DIR/figures).")
    p.add_argument("sweep_dir", metavar="SWEEP_DIR",
                   help="a sweep directory (rdvae sweep --out), or a multi-rate run evaluated with --betas")
    p.add_argument("--runs", nargs="+", default=None, metavar="RUN",
                   help="run directory names for the image grids (default: up to --max-runs runs "
                        "of the Pareto frontier)")
    p.add_argument("--max-runs", type=positive_int, default=6,
                   help="runs in the image grids when --runs is not given (default: 6)")
    p.add_argument("--examples", type=positive_int, default=5,
                   help="inputs in the reconstruction grid (default: 5)")
    p.add_argument("--z-draws", type=positive_int, default=2,
                   help="draws of z ~ e(z|x) per input (default: 2)")
    p.add_argument("--samples", type=positive_int, default=8,
                   help="draws of z ~ m(z) in the sample grid (default: 8)")
    p.add_argument("--format", dest="formats", nargs="+", default=["png", "svg"],
                   help="file formats, any matplotlib writes: png, svg, pdf, ... (default: png svg)")
    p.add_argument("--over", metavar="SWEEP_DIR", default=None,
                   help="SWEEP_DIR here is a multi-rate run evaluated with `rdvae eval RUN --betas ...`: "
                        "also overlay its curve on the points of this separate beta sweep (default: none)")
    p.add_argument("--no-grids", dest="grids", action="store_false",
                   help="only the RD plane and -ELBO vs R (no models loaded)")
    add_common(p, out_help="where the figures go (default: SWEEP_DIR/figures)")
    p.set_defaults(handler=run)


def run(args) -> dict:
    from matplotlib.backend_bases import FigureCanvasBase

    from ..plots import PlotError, plot_sweep
    from ..plots.multi_rate import plot_multi_rate_run
    from ..sweep import SweepError
    from . import UserError

    known = FigureCanvasBase.get_supported_filetypes()
    unknown = [f for f in args.formats if f not in known]
    if unknown:
        raise UserError(f"--format {' '.join(unknown)}: not a figure format; choose from "
                        f"{', '.join(sorted(known))}")
    try:
        result = plot_sweep(args.sweep_dir, out=args.out, runs=args.runs, max_runs=args.max_runs,
                            examples=args.examples, z_draws=args.z_draws, samples=args.samples,
                            formats=tuple(args.formats), grids=args.grids)
        if args.over:
            overlay = plot_multi_rate_run(args.sweep_dir, args.over, result["out"], args.formats)
            result["files"] += overlay["files"]
            result["comparison"] = overlay["comparison"]
    except (PlotError, SweepError) as err:
        raise UserError(str(err)) from None
    for path in result["files"]:
        print(path)
    return result
