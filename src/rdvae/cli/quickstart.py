"""`rdvae quickstart`: a beta sweep on the bundled digits, its table and its figures.

Seven small MLP VAEs on scikit-learn's 8x8 digits (no download), beta from 0.1 to 10: as beta
grows the rate R falls and the distortion D rises, tracing the rate-distortion trade-off.
Under a minute on two CPU cores (about 45 CPU-seconds in all).
"""

from __future__ import annotations

from pathlib import Path

from .options import add_common, positive_int

BETAS = [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0]
BASE = {
    "dataset": "digits", "binarize": "dynamic", "family": "mlp", "latent_dim": 8,
    "model.hidden": [128], "epochs": 40, "batch_size": 64, "lr": 3e-3, "seed": 0,
}


def register(sub) -> None:
    p = sub.add_parser(
        "quickstart", help="beta sweep on the bundled digits: table, RD plane and sample grids",
        description="Train a small MLP VAE on the bundled 8x8 digits for each beta in "
                    f"{', '.join(f'{b:g}' for b in BETAS)}; print beta, R, D and -ELBO (nats, test split) "
                    "and write the RD plane, -ELBO vs R, reconstructions and samples into --out.")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="parallel runs (default: sized to the cores; 1 = sequential)")
    add_common(p, out_help="where the runs and figures go (default: runs/quickstart)")
    p.set_defaults(handler=run)


def run(args) -> dict:
    from ..plots import plot_sweep
    from ..sweep import SweepSpec, run_sweep, sweep
    from ..sweep.results import format_rows
    from . import UserError

    out = Path(args.out or "runs/quickstart")
    spec = SweepSpec(base=dict(BASE), points=sweep("beta", BETAS))
    print(f"quickstart: {len(BETAS)} MLP VAEs on the bundled 8x8 digits (dynamic binarization), "
          f"beta from {BETAS[0]:g} to {BETAS[-1]:g}, {BASE['epochs']} epochs each -> {out}")
    try:
        report = run_sweep(out, spec, workers=args.workers, progress=args.progress)
    except ValueError as err:
        raise UserError(str(err)) from None
    failed = [r for r in report.rows if r["status"] != "done"]
    print()
    print(format_rows(report.rows, ["beta"]))
    if failed:
        raise UserError(f"{len(failed)} quickstart run(s) failed; see {out / 'results.csv'}")
    figures = plot_sweep(out, max_runs=len(BETAS), examples=6, z_draws=2, samples=8)
    print("\nrate R falls and distortion D rises as beta grows; the figures:")
    for path in figures["files"]:
        if path.endswith(".png"):
            print(f"  {path}")
    print(f"table: {out / 'results.csv'}; runs: {out / 'runs'}")
    return {"out": str(out), "rows": report.rows, "figures": figures["files"],
            "trained": report.trained}
