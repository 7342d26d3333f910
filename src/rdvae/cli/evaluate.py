"""`rdvae eval RUN_DIR`: measure a trained run on a split."""

from __future__ import annotations

import math

from .options import add_common, non_negative_int, positive_float, positive_int, seed_int

AIS_CPU_EXAMPLES = 100   # --ais on a CPU without --examples: a random subset of this many
AIS_LEAPFROG = 5         # rdvae.evaluate.ais.LEAPFROG, written here so that `rdvae --help` imports no torch


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a trained run (R, D, ELBO, IW-NLL, MI, active units)")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (rdvae train --out)")
    p.add_argument("--iw-samples", type=non_negative_int, default=0, metavar="K",
                   help="importance samples for the IW negative log-likelihood (default: 0, skip)")
    p.add_argument("--split", default=None, choices=("train", "valid", "test"),
                   help="the split to evaluate (default: the run's final split)")
    p.add_argument("--examples", type=positive_int, default=None, metavar="N",
                   help="evaluate a random subset of N examples of the split, drawn with --seed (a quick "
                        "look; written to eval-SPLIT.json, not summary.json; default: all)")
    p.add_argument("--batch-size", type=positive_int, default=1000,
                   help="examples per evaluation batch (default: 1000)")
    p.add_argument("--seed", type=seed_int, default=0,
                   help="seed of the Monte Carlo draws and of --examples (default: 0)")
    p.add_argument("--precision", default=None, choices=("fp32", "bf16"),
                   help="arithmetic precision (default: the run's)")
    p.add_argument("--device", default="auto",
                   help="auto (CUDA when present), cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--betas", type=positive_float, nargs="+", default=None, metavar="BETA",
                   help="multi-rate runs: evaluate at each beta and write one row per beta to "
                        "RUN_DIR/results.csv (the sweep format, so `rdvae plot RUN_DIR` draws the curve)")
    p.add_argument("--surgery", action="store_true",
                   help="also the ELBO surgery of the rate: average KL = index-code MI + marginal KL, "
                        "marginal KL = total correlation + dimension-wise KL (+ marginal dependence), "
                        "q(z) summed over the whole split; stored as surgery_* keys")
    p.add_argument("--surgery-points", type=positive_int, default=None, metavar="M",
                   help="draws of z for the surgery's outer expectation (default: one per example)")
    p.add_argument("--surgery-split-points", type=non_negative_int, default=5000, metavar="M",
                   help="draws used for the total correlation / dimension-wise split, which costs "
                        "N x d per draw (default 5000; 0: skip the split)")
    ais = p.add_argument_group(
        "annealed importance sampling",
        "AIS log-likelihood (Wu et al. 2017) with HMC moves over a sigmoid schedule of betas, step sizes "
        "tuned per chain in a pilot over a quarter of the steps (rdvae.evaluate.ais). Cost: about "
        "1.25 x STEPS x leapfrog decoder gradient evaluations per chain and example; on a CPU the "
        f"default is a random subset of {AIS_CPU_EXAMPLES} examples (--examples to change it).")
    ais.add_argument("--ais", dest="ais_steps", type=non_negative_int, default=0, metavar="STEPS",
                     help="annealing steps for the AIS negative log-likelihood, reported with its standard "
                          "error beside the IW-NLL (default: 0, skip; 1000-5000 on MNIST)")
    ais.add_argument("--ais-chains", type=positive_int, default=16, metavar="C",
                     help="AIS chains per example (default: 16)")
    ais.add_argument("--ais-leapfrog", type=positive_int, default=AIS_LEAPFROG, metavar="L",
                     help=f"leapfrog steps per HMC move (default: {AIS_LEAPFROG})")
    ais.add_argument("--bdmc", action="store_true",
                     help="also bidirectional Monte Carlo (Grosse et al. 2015) with the same settings on "
                          "data simulated from the model: a lower and an upper bound on log p(x) and their "
                          "gap, which bounds the AIS error on such data")
    ais.add_argument("--bdmc-examples", type=positive_int, default=10, metavar="N",
                     help="examples simulated for --bdmc (default: 10)")
    add_common(p, out=False)
    p.set_defaults(handler=run)


def run(args) -> dict:
    from ..rundir import RunDir
    from ..train import load_run
    from ..train.config import run_record
    from . import UserError

    if args.bdmc and not args.ais_steps:
        raise UserError("--bdmc needs --ais STEPS: the annealing steps of both directions (e.g. --ais 1000)")
    if args.ais_steps and args.betas is not None:
        raise UserError("--ais measures the model as trained, not at --betas; run them separately")
    folder = RunDir(args.run_dir)
    folder.read_config()   # a run folder (or FileNotFoundError), before the lock is taken in it
    with folder.lock("rdvae eval"):   # it writes summary.json, eval-SPLIT.json or results.csv
        trained = load_run(args.run_dir, device=args.device)
        if trained.changed_plugins:   # accepted (--accept-plugin-changes): the readings are the new code's
            trained.run.write_config(run_record(trained.config, trained.run.path))
        return measure(args, trained)


def measure(args, trained) -> dict:
    """The measurements of `rdvae eval` on a loaded run, written into its folder."""
    from ..evaluate import evaluate_model, format_report
    from ..rundir import write_json
    from . import UserError

    config = trained.config
    split = args.split or config.final_split
    x = trained.dataset.split(split)
    subset = None
    if args.ais_steps and args.examples is None and next(trained.model.parameters()).device.type == "cpu":
        args.examples = AIS_CPU_EXAMPLES
    if args.examples is not None and args.examples < len(x):
        x, subset = random_subset(x, args.examples, args.seed)
        print(f"evaluating {subset}")
    if args.betas is not None:
        return run_betas(args, trained, x, split)
    ais_options = {"leapfrog": args.ais_leapfrog}
    try:
        result = evaluate_model(trained.model, x, iw_samples=args.iw_samples,
                                batch_size=args.batch_size, seed=args.seed,
                                precision=args.precision or config.precision, progress=args.progress,
                                ais_steps=args.ais_steps, ais_chains=args.ais_chains, ais_options=ais_options)
        if args.bdmc:
            result.update(run_bdmc(args, trained.model, ais_options))
    except ValueError as err:     # e.g. AIS refusing discrete latents
        if not args.ais_steps:    # not AIS's: the command line reports it as it is
            raise
        raise UserError(f"{err} (rdvae eval --ais)") from None
    result["split"] = split
    if subset:
        result["subset"] = subset
    surgery = None
    if args.surgery:
        from ..evaluate import elbo_surgery

        surgery = elbo_surgery(trained.model, x, points=args.surgery_points,
                               dimension_points=args.surgery_split_points or None,
                               dimensions=args.surgery_split_points != 0,
                               batch_size=args.batch_size, seed=args.seed)
        result.update(surgery.as_dict())
    if split == config.final_split and len(x) == len(trained.dataset.split(split)):
        trained.run.update_summary(**result)
    else:
        write_json(trained.run / f"eval-{split}.json", result)
    print(f"{args.run_dir} ({config.family} on {config.dataset}, {split} split)")
    print(format_report(result, dims=math.prod(trained.dataset.event_shape)))
    if surgery is not None:
        from ..evaluate import format_surgery

        print("ELBO surgery (nats):")
        print(format_surgery(surgery))
    return result


def random_subset(x, n: int, seed: int):
    """n examples of x drawn with `seed`, in their order in x, and a phrase saying so. (A split's
    first rows need not be typical: static binarized MNIST's test file is ordered.)"""
    import torch

    picked = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[picked.sort().values.to(x.device)], f"a random subset of {n} of {len(x)} examples (seed {seed})"


def run_bdmc(args, model, ais_options: dict) -> dict:
    """BDMC figures as bdmc_* keys."""
    from ..evaluate.ais import bdmc

    found = bdmc(model, args.ais_steps, examples=args.bdmc_examples, chains=args.ais_chains, seed=args.seed,
                 progress=args.progress, **ais_options)
    keys = {"lower": "lower_mean", "upper": "upper_mean", "gap": "gap", "gap_se": "gap_se", "steps": "steps",
            "chains": "chains", "examples": "examples", "gradient_evaluations": "gradient_evaluations",
            "seconds": "seconds"}
    return {f"bdmc_{key}": found[source] for key, source in keys.items()}


def run_betas(args, trained, x, split: str) -> dict:
    """One evaluation per beta of a multi-rate run, each a results.csv row as a sweep writes it."""
    from ..sweep.beta_rows import evaluate_at_betas
    from ..sweep.results import RESULTS_FILE, format_rows
    from . import UserError

    try:
        rows = evaluate_at_betas(trained, x, args.betas, split, iw_samples=args.iw_samples,
                                 batch_size=args.batch_size, seed=args.seed, precision=args.precision,
                                 progress=args.progress)
    except ValueError as err:
        raise UserError(f"{err} (rdvae eval --betas)") from None
    path = trained.run / RESULTS_FILE
    print(f"{args.run_dir} ({trained.config.family} on {trained.config.dataset}, {split} split), one row "
          f"per beta in {path}")
    print(format_rows(rows, ["beta", "mutual_info", "active_units"]))
    return {"results": str(path), "rows": rows}
