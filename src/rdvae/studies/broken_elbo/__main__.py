"""`python -m rdvae.studies.broken_elbo CSV [CSV ...] --out DIR`: the broken-elbo MNIST analysis of
results CSVs, without any trained model (analysis.reanalyse): the claims with the runs they rest on,
H_hat, the tables and figs. 3a/b, e.g. of the committed docs/results/broken-elbo-results.csv together
with the broken_elbo_results.csv of a folder that trained further stages."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .analysis import reanalyse, report


def main(argv: Sequence[str] | None = None) -> dict:
    """Parse the command line, write the analysis (reanalyse) and print its report."""
    parser = argparse.ArgumentParser(prog="python -m rdvae.studies.broken_elbo",
                                     description="The broken-elbo MNIST analysis of results CSVs (no models "
                                                 "needed): claims, H_hat, tables, figs. 3a/b")
    parser.add_argument("csv", nargs="+", help="broken_elbo_results.csv files (a run in several: the last)")
    parser.add_argument("--out", required=True,
                        help="folder for analysis.md, analysis.json, the CSV and the figures")
    parser.add_argument("--scale", default="cpu", help="the scale whose grid trained runs of a CSV without "
                                                       "the annealed column (default: cpu)")
    parser.add_argument("--no-figures", action="store_true", help="skip figs. 3a/b")
    args = parser.parse_args(argv)
    summary = reanalyse(args.csv, args.out, args.scale, figures=not args.no_figures)
    print(report(summary))
    return summary


if __name__ == "__main__":
    main()
