"""`rdvae report SWEEP_OR_RUN --out report.html`: one self-contained interactive HTML page."""

from __future__ import annotations

from pathlib import Path

from .options import add_common, positive_int


def register(sub) -> None:
    p = sub.add_parser(
        "report", help="one self-contained HTML page of a sweep or run (interactive RD plane, table)",
        description="Write one HTML file that works offline (plotly inlined): the interactive "
                    "rate-distortion plane (hover a run for beta, R, D, ELBO, I_q; click or select it for "
                    "its reconstructions and samples), -ELBO vs R, the ELBO surgery bars when measured "
                    "(rdvae eval --surgery) and the sortable results table. Needs pip install "
                    "'rdvae[report]'.")
    p.add_argument("source", metavar="SWEEP_OR_RUN",
                   help="a sweep directory (results.csv) or a run directory")
    p.add_argument("--image-runs", type=positive_int, default=24, metavar="N",
                   help="runs whose reconstructions and samples the page carries (frontier first; "
                        "default 24)")
    add_common(p, out=False)
    p.add_argument("--out", dest="out_file", metavar="FILE.html",   # a file, not a directory
                   help="the HTML file to write (default: SWEEP_OR_RUN/report.html)")
    p.set_defaults(handler=run)


def run(args) -> dict:
    from ..plots.report_page import report_page
    from ..plots.sweep_figures import PlotError
    from ..sweep.spec import SweepError
    from . import UserError

    out = Path(args.out_file) if args.out_file else Path(args.source) / "report.html"
    if out.is_dir():
        raise UserError(f"--out {out} is a directory; name the HTML file to write, e.g. "
                        f"{out / 'report.html'}")
    try:
        result = report_page(args.source, out, image_runs=args.image_runs)
    except (PlotError, SweepError) as err:
        raise UserError(str(err)) from None
    print(f"{out}: {result['runs']} runs, {result['with_images']} with images, "
          f"{result['bytes'] / 1e6:.1f} MB")
    return result
