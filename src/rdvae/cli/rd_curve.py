"""`rdvae rd-curve RUN [RUN ...]`: each run's decoder's rate-distortion curve by AIS (Huang et al. 2020),
beside the run's own encoder point, as CSV, JSON and a figure on the rate-distortion plane."""

from __future__ import annotations

from .options import add_common, positive_float, positive_int, seed_int

CPU_EXAMPLES = 100
STEPS = 1000
CURVE_FILE, POINTS_FILE, FIGURE_STEM, SUMMARY_FILE = "rd_curve.csv", "encoder_points.csv", "rd_curve", \
    "rd_curve.json"
CURVE_COLUMNS = ("run_dir", "family", "train_beta", "beta", "ais_beta", "rate", "rate_se", "distortion",
                 "distortion_se", "log_normalizer")
POINT_COLUMNS = ("run_dir", "family", "beta", "rate", "rate_se", "distortion", "distortion_se", "elbo",
                 "ais_nll", "ais_nll_se", "distortion_above_curve", "sigma", "examples", "steps", "chains",
                 "leapfrog", "acceptance", "gradient_evaluations", "seconds")


def register(sub) -> None:
    p = sub.add_parser(
        "rd-curve", help="the rate-distortion curve a run's decoder allows (AIS), beside the run's (R, D)",
        description="For each run: one AIS run (HMC, step sizes tuned in a pilot) from m(z) along "
                    "p_a(z|x) ~ m(z) d(x|z)^a, a = 1 / beta from 1 / --beta-max to 1 / --beta-min, whose "
                    "rate R and distortion D at each beta are the best any encoder of this decoder and "
                    "marginal can reach when minimising D + beta R (an upper bound: AIS overestimates R); "
                    "a = 1 gives the AIS log-likelihood too. Writes rd_curve.csv (one row per run and "
                    "beta), encoder_points.csv (each run's own encoder on the same examples, its AIS NLL "
                    "and how far above its decoder's curve it lies), rd_curve.json and the figure "
                    "rd_curve.png/.svg into --out. Cost per run: about 1.25 x STEPS x leapfrog decoder "
                    "gradient evaluations for each of examples x chains.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN", help="run directories (rdvae train --out)")
    p.add_argument("--steps", type=positive_int, default=STEPS,
                   help=f"annealing steps (default: {STEPS})")
    p.add_argument("--chains", type=positive_int, default=16, help="AIS chains per example (default: 16)")
    p.add_argument("--leapfrog", type=positive_int, default=5,
                   help="leapfrog steps per HMC move (default: 5)")
    p.add_argument("--beta-min", type=positive_float, default=0.1,
                   help="the curve from this beta (the rate weight of D + beta R, as in rdvae train; "
                        "default: 0.1)")
    p.add_argument("--beta-max", type=positive_float, default=10.0, help="... to this beta (default: 10)")
    p.add_argument("--points", type=positive_int, default=25,
                   help="betas recorded on the curve, log-spaced (default: 25)")
    p.add_argument("--sigma", type=positive_float, default=None,
                   help="observation noise: the decoder becomes N(x; mean(z), sigma^2 I) with mean(z) the "
                        "decoder's mean, stating or overriding a Gaussian decoder's sigma (in the data's "
                        "units; default: the decoder as trained)")
    p.add_argument("--split", default=None, choices=("train", "valid", "test"),
                   help="the split (default: each run's final split)")
    p.add_argument("--examples", type=positive_int, default=None, metavar="N",
                   help=f"a random subset of N examples, drawn with --seed (default: {CPU_EXAMPLES} on a "
                        "CPU, the whole split elsewhere)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the subset and the chains (default: 0)")
    p.add_argument("--device", default="auto",
                   help="auto (CUDA when present), cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--format", dest="formats", nargs="+", default=["png", "svg"],
                   help="figure formats (default: png svg)")
    add_common(p, out_help="where the CSV, JSON and figure go (default: RUN/rd-curve for one run; needed "
                           "for several)")
    p.set_defaults(handler=run)


def run(args) -> dict:
    from pathlib import Path

    from matplotlib.backend_bases import FigureCanvasBase

    from . import UserError

    unknown = [f for f in args.formats if f not in FigureCanvasBase.get_supported_filetypes()]
    if unknown:
        raise UserError(f"--format {' '.join(unknown)}: not a figure format; choose from "
                        f"{', '.join(sorted(FigureCanvasBase.get_supported_filetypes()))}")
    if args.beta_min > args.beta_max:
        raise UserError(f"--beta-min {args.beta_min:g} is above --beta-max {args.beta_max:g}")
    if args.out is None and len(args.run_dirs) > 1:
        raise UserError(f"--out is needed with several runs ({len(args.run_dirs)} given)")
    out = Path(args.out) if args.out is not None else Path(args.run_dirs[0]) / "rd-curve"
    curves, points = [], []
    for run_dir in args.run_dirs:
        curve_rows, point = measure_run(args, run_dir)
        curves += curve_rows
        points.append(point)
        print(f"{run_dir}: R = {point['rate']:.2f}, D = {point['distortion']:.2f} nats; AIS NLL "
              f"{_number(point.get('ais_nll'))}; above its decoder's curve by "
              f"{_number(point['distortion_above_curve'])} nats ({point['seconds']:.0f} s)")
    files = write_outputs(out, curves, points, args)
    for path in files:
        print(path)
    return {"out": str(out), "files": [str(f) for f in files], "runs": points, "settings": settings(args)}


def settings(args) -> dict:
    keys = ("steps", "chains", "leapfrog", "beta_min", "beta_max", "points", "sigma", "seed", "examples",
            "split", "device")
    return {k: getattr(args, k) for k in keys}


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def measure_run(args, run_dir: str) -> tuple[list[dict], dict]:
    """The curve rows and the encoder point of one run."""
    from ..evaluate import evaluate_model
    from ..evaluate.ais import distortion_above_curve, rate_distortion_curve, with_observation_noise
    from ..train import load_run
    from . import UserError
    from .evaluate import random_subset

    trained = load_run(run_dir, device=args.device)
    model = trained.model if args.sigma is None else with_observation_noise(trained.model, args.sigma)
    x = trained.dataset.split(args.split or trained.config.final_split)
    device = next(model.parameters()).device
    examples = args.examples or (CPU_EXAMPLES if device.type == "cpu" else len(x))
    if examples < len(x):
        x, _ = random_subset(x, examples, args.seed)
    try:
        own = evaluate_model(model, x, seed=args.seed, diagnostics=False)
        curve = rate_distortion_curve(model, x, args.steps, beta_max=1 / args.beta_min,
                                      beta_min=1 / args.beta_max, points=args.points,
                                      start=min(1e-3, 1 / args.beta_max), chains=args.chains,
                                      leapfrog=args.leapfrog, seed=args.seed, progress=args.progress)
    except ValueError as err:      # e.g. discrete latents, or --sigma on a Bernoulli decoder
        raise UserError(f"{run_dir}: {err}") from None
    family, train_beta = trained.config.family, trained.config.beta
    columns = ("beta", "rate", "rate_se", "distortion", "distortion_se", "log_normalizer")
    rows = [{"run_dir": run_dir, "family": family, "train_beta": train_beta, "beta": 1 / a, "ais_beta": a,
             "rate": r, "rate_se": rs, "distortion": d, "distortion_se": ds, "log_normalizer": lz}
            for a, r, rs, d, ds, lz in zip(*(curve[k] for k in columns), strict=True)]
    point = {"run_dir": run_dir, "family": family, "beta": train_beta, "rate": own["rate"],
             "rate_se": own["rate_se"], "distortion": own["distortion"],
             "distortion_se": own["distortion_se"],
             "elbo": own["elbo"], "ais_nll": curve.get("ais_nll"), "ais_nll_se": curve.get("ais_nll_se"),
             "distortion_above_curve": distortion_above_curve(curve, own["rate"], own["distortion"]),
             "sigma": args.sigma, "examples": len(x),
             **{k: curve[k] for k in ("steps", "chains", "leapfrog", "acceptance", "gradient_evaluations",
                                      "seconds")}}
    return rows, point


def write_outputs(out, curves: list[dict], points: list[dict], args) -> list:
    import csv
    import io

    from ..plots.rd_plane import plot_rd_plane
    from ..plots.style import save_figure
    from ..plots.sweep_figures import run_label
    from ..rundir import write_json, write_text

    def table(rows, columns):
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows([{k: ("" if row.get(k) is None else row[k]) for k in columns} for row in rows])
        return buffer.getvalue()

    files = [out / CURVE_FILE, out / POINTS_FILE, out / SUMMARY_FILE]
    write_text(files[0], table(curves, CURVE_COLUMNS))
    write_text(files[1], table(points, POINT_COLUMNS))
    write_json(files[2], {"runs": points, "curves": curves, "settings": settings(args)})
    labels = [run_label(p, ["beta"]) for p in points]
    if len(set(labels)) < len(labels):   # runs of one beta: told apart by their folders
        from pathlib import Path

        labels = [f"{Path(p['run_dir']).name} {label}".strip()
                  for p, label in zip(points, labels, strict=True)]
    drawn = [{"rate": [c["rate"] for c in curves if c["run_dir"] == p["run_dir"]],
              "distortion": [c["distortion"] for c in curves if c["run_dir"] == p["run_dir"]],
              "family": p["family"], "label": f"AIS curve of the {label} decoder"}
             for p, label in zip(points, labels, strict=True)]
    title = f"decoders' rate-distortion curves (AIS, {args.steps} steps)"
    files += save_figure(plot_rd_plane(points, title, labels=labels, curves=drawn), out / FIGURE_STEM,
                         tuple(args.formats))
    return files
