"""`rdvae eval RUN_OR_SWEEP`: measure a trained run, or every finished run of a sweep, with registered
measures (`rdvae list measures`); the library (rdvae.evaluate.run) decides where the results are stored.

Distributed: started by torchrun (`torchrun --standalone --nproc-per-node N $(which rdvae) eval RUN ...`)
each process joins the group (rdvae.engine.distributed.init with --device) and the run is measured with
per-block streams, sharded over the ranks (rdvae.evaluate.sharded): rate-distortion, mutual-info,
active-units, iw-nll, ais and surgery on every rank; the other measures (bdmc, retrieval, fid, a plugin's)
after them on rank 0 alone; rank 0 alone writes and prints. `rdvae eval RUN --sharded` makes the same
evaluation in one process: the figures a torchrun evaluation with the same --block equals. A sweep and
--betas are evaluated in one process only.
"""

from __future__ import annotations

import math
import sys

from .options import add_common, non_negative_int, parse_assignment, positive_float, positive_int, seed_int

AIS_CPU_EXAMPLES = 100   # --ais on a CPU without --examples: a random subset of this many
AIS_LEAPFROG = 5         # rdvae.evaluate.ais.LEAPFROG, written here so that `rdvae --help` imports no torch
SHARDED_BLOCK = 500      # rdvae.evaluate.sharded.DEFAULT_BLOCK, likewise


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a trained run or a sweep's runs (R, D, ELBO, MI, active units, "
                                    "IW-NLL, AIS, ... any registered measure)")
    p.add_argument("run_dir", metavar="RUN_OR_SWEEP",
                   help="a run directory (rdvae train --out), or a sweep directory (rdvae sweep --out): each "
                        "of its finished runs is evaluated and its row of the sweep's results.csv rewritten")
    p.add_argument("--measure", dest="measures", action="append", default=[], metavar="NAME",
                   help="also measure NAME, a registered measure (rdvae list measures; a plugin's with "
                        "--plugin), repeatable; rate-distortion, mutual-info and active-units are always "
                        "measured")
    p.add_argument("--measure-option", dest="measure_options", action="append", default=[],
                   type=parse_assignment, metavar="NAME.KEY=VALUE",
                   help="an option of the measure NAME (given with --measure or a shorthand), VALUE as JSON "
                        "or else a string, repeatable: e.g. --measure ais --measure-option ais.steps=1000")
    p.add_argument("--iw-samples", type=non_negative_int, default=0, metavar="K",
                   help="importance samples for the IW negative log-likelihood (the measure iw-nll with "
                        "samples=K; default: 0, skip)")
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
                   help="also the ELBO surgery of the rate (the measure surgery): average KL = index-code MI "
                        "+ marginal KL, marginal KL = total correlation + dimension-wise KL (+ marginal "
                        "dependence), q(z) summed over the whole split; stored as surgery_* keys")
    p.add_argument("--surgery-points", type=positive_int, default=None, metavar="M",
                   help="draws of z for the surgery's outer expectation (default: one per example)")
    p.add_argument("--surgery-split-points", type=non_negative_int, default=5000, metavar="M",
                   help="draws used for the total correlation / dimension-wise split, which costs "
                        "N x d per draw (default 5000; 0: skip the split)")
    shard = p.add_argument_group(
        "sharded evaluation",
        "Under torchrun (`torchrun --standalone --nproc-per-node N $(which rdvae) eval RUN ...`) the run is "
        "evaluated by N processes: the examples are cut into blocks whose Monte Carlo draws are seeded per "
        "block and measure, each process measures its blocks, and the per-example values are gathered, so "
        "that the figures do not depend on N. rate-distortion, mutual-info (q(z) over all the examples on "
        "every rank), active-units, iw-nll, ais and surgery are sharded; the other measures (bdmc, "
        "retrieval, fid, a plugin's) run after them on rank 0 alone, which writes and prints. Stored with "
        "eval_streams=per-block, eval_world_size and eval_block. A sweep and --betas are not evaluated under "
        "torchrun.")
    shard.add_argument("--sharded", action="store_true",
                       help="evaluate with per-block streams in this one process: the figures that a "
                            "torchrun evaluation with the same --block, --seed and device type gives "
                            "(implied under torchrun)")
    shard.add_argument("--block", type=positive_int, default=None, metavar="B",
                       help=f"examples per block of draws of a sharded evaluation (default: {SHARDED_BLOCK}; "
                            "another block size draws otherwise)")
    ais = p.add_argument_group(
        "annealed importance sampling",
        "AIS log-likelihood (Wu et al. 2017) with HMC moves over a sigmoid schedule of betas, step sizes "
        "tuned per chain in a pilot over a quarter of the steps (the measure ais, rdvae.evaluate.ais). Cost: "
        "about 1.25 x STEPS x leapfrog decoder gradient evaluations per chain and example; on a CPU the "
        f"default is a random subset of {AIS_CPU_EXAMPLES} examples (--examples to change it).")
    ais.add_argument("--ais", dest="ais_steps", type=non_negative_int, default=0, metavar="STEPS",
                     help="annealing steps for the AIS negative log-likelihood, reported with its standard "
                          "error beside the IW-NLL (default: 0, skip; 1000-5000 on MNIST)")
    ais.add_argument("--ais-chains", type=positive_int, default=16, metavar="C",
                     help="AIS chains per example (default: 16)")
    ais.add_argument("--ais-leapfrog", type=positive_int, default=AIS_LEAPFROG, metavar="L",
                     help=f"leapfrog steps per HMC move (default: {AIS_LEAPFROG})")
    ais.add_argument("--bdmc", action="store_true",
                     help="also bidirectional Monte Carlo (Grosse et al. 2015; the measure bdmc) with the "
                          "same settings on data simulated from the model: a lower and an upper bound on "
                          "log p(x) and their gap, which bounds the AIS error on such data")
    ais.add_argument("--bdmc-examples", type=positive_int, default=10, metavar="N",
                     help="examples simulated for --bdmc (default: 10)")
    add_common(p, out=False)
    p.set_defaults(handler=run)


def requested_measures(args) -> dict[str, dict]:
    """The measures (name -> options) of a command line: rate-distortion, mutual-info and active-units,
    those of the shorthands (--iw-samples, --ais, --bdmc, --surgery), and each --measure NAME with its
    --measure-option NAME.KEY=VALUE (which take precedence over a shorthand's)."""
    from ..errors import ConfigError
    from ..evaluate.measures import MEASURES
    from ..evaluate.run import DEFAULT_MEASURES
    from . import UserError

    measures: dict[str, dict] = {name: {} for name in DEFAULT_MEASURES}
    if args.iw_samples:
        measures["iw-nll"] = {"samples": args.iw_samples}
    ais = {"chains": args.ais_chains, "leapfrog": args.ais_leapfrog}
    if args.ais_steps:
        measures["ais"] = {"steps": args.ais_steps, **ais}
    if args.bdmc:
        measures["bdmc"] = {**({"steps": args.ais_steps} if args.ais_steps else {}), **ais,
                            "examples": args.bdmc_examples}
    if args.surgery:
        points = {"points": args.surgery_points} if args.surgery_points is not None else {}
        measures["surgery"] = {**points, "split_points": args.surgery_split_points}
    def known(name: str, flag: str) -> str:
        try:
            MEASURES[name]   # unknown: a ConfigError naming the registered ones (and a did-you-mean)
        except ConfigError as err:
            raise UserError(f"{flag}: {err}") from None
        return MEASURES.canonical(name)

    for name in args.measures:
        measures.setdefault(known(name, f"--measure {name}"), {})
    for key, value in args.measure_options:
        name, dot, option = key.rpartition(".")
        if not (dot and name and option):
            raise UserError(f"--measure-option {key}={value!r}: expected NAME.KEY=VALUE, a measure's name "
                            "and one of its options (e.g. ais.steps=1000)")
        canonical = known(name, f"--measure-option {key}")
        if canonical not in measures:
            raise UserError(f"--measure-option {key}={value!r}: measure {name!r} is not measured here; add "
                            f"--measure {name}")
        measures[canonical][option] = value
    if args.bdmc and "steps" not in measures["bdmc"]:
        raise UserError("--bdmc needs --ais STEPS: the annealing steps of both directions (e.g. --ais 1000)")
    return measures


def run(args) -> dict:
    from pathlib import Path

    from ..engine import distributed
    from ..evaluate.run import evaluate_run, is_sweep
    from . import UserError

    measures = requested_measures(args)
    if args.betas is not None and {"ais", "bdmc"} & set(measures):
        raise UserError("--ais measures the model as trained, not at --betas; run them separately")
    launched = distributed.launched()
    sweep = is_sweep(Path(args.run_dir))
    if launched or args.sharded:
        how = "under torchrun" if launched else "with --sharded"
        if sweep:
            raise UserError(f"{args.run_dir} is a sweep directory; a sweep is evaluated in one process "
                            f"without --sharded: evaluate its runs one by one {how}")
        if args.betas is not None:
            raise UserError(f"--betas evaluates a multi-rate run in one process; it cannot be used {how}")
    elif args.block is not None:
        raise UserError(f"--block {args.block} sets the blocks of a sharded evaluation: add --sharded (or "
                        "start rdvae eval under torchrun)")
    if sweep:
        return run_sweep(args, measures)
    if args.betas is not None:
        return run_betas(args, measures)
    settings = dict(split=args.split, examples=subset_size(args, measures), seed=args.seed,
                    batch_size=args.batch_size, precision=args.precision, progress=args.progress,
                    device=args.device)
    if args.sharded or launched:
        settings.update(sharded=True, block=args.block)
    if not launched:
        evaluation = evaluate_run(args.run_dir, measures, **settings)
        show(args.run_dir, evaluation)
        return evaluation.result
    distributed.init(args.device)   # join the group torchrun started: each rank measures its blocks
    main = distributed.is_main()
    try:
        evaluation = evaluate_run(args.run_dir, measures, **settings)
    except BaseException:
        distributed.shutdown()
        raise
    distributed.shutdown(completed=True)
    if not main:   # rank 0 reports, and its --json line is the only one
        args.json = False
        return evaluation.result
    show(args.run_dir, evaluation)
    return evaluation.result


def subset_size(args, measures: dict) -> int | None:
    """--examples, or for AIS on a CPU without it AIS_CPU_EXAMPLES."""
    from ..device import resolve_device

    if args.examples is None and "ais" in measures and resolve_device(args.device).type == "cpu":
        return AIS_CPU_EXAMPLES
    return args.examples


def show(label: str, evaluation) -> None:
    """Print an evaluation: the run, its split (and subset), the report and where it was stored."""
    from ..evaluate import format_report

    trained = evaluation.trained
    if evaluation.subset:
        print(f"evaluating {evaluation.subset}")
    print(f"{label} ({trained.config.family} on {trained.config.dataset}, {evaluation.split} split)")
    print(format_report(evaluation.result, dims=math.prod(trained.dataset.event_shape)))
    if evaluation.result.get("eval_streams"):
        print(f"  ({evaluation.result['eval_streams']} streams, blocks of {evaluation.result['eval_block']} "
              f"examples, {evaluation.result['eval_world_size']} process(es))")
    if evaluation.stored is not None:
        print(f"  written to {evaluation.stored}")


def run_sweep(args, measures: dict) -> dict:
    """Every finished run of a sweep evaluated, its row of results.csv rewritten; a run that fails is
    reported and the others go on (as `rdvae sweep` does: a line on stderr names the failed runs, and the
    command fails only when every run did)."""
    from ..evaluate.run import evaluate_sweep
    from . import UserError

    if args.betas is not None:
        raise UserError(f"--betas evaluates one multi-rate run; {args.run_dir} is a sweep directory, give "
                        "one of its runs")

    def on_run(run_dir: str, evaluation, error: str | None) -> None:
        if error is not None:
            print(f"{args.run_dir}/{run_dir}: not evaluated: {error}", file=sys.stderr)
        else:
            show(f"{args.run_dir}/{run_dir}", evaluation)

    report = evaluate_sweep(args.run_dir, measures, split=args.split, examples=subset_size(args, measures),
                            seed=args.seed, batch_size=args.batch_size, precision=args.precision,
                            progress=args.progress, device=args.device, on_run=on_run)
    if not report.evaluated and not report.failed:
        raise UserError(f"{args.run_dir} has no finished runs to evaluate ({len(report.unfinished)} not "
                        "finished); finish them with rdvae sweep --out SWEEP")
    print(f"{len(report.evaluated)} runs evaluated, their rows rewritten in {report.results}"
          + (f"; {len(report.unfinished)} not finished (not evaluated)" if report.unfinished else ""))
    if report.failed:
        first, error = next(iter(report.failed.items()))
        tried = len(report.failed) + len(report.evaluated)
        if not report.evaluated:
            raise UserError(f"all {tried} finished runs of {args.run_dir} could not be evaluated ({first}: "
                            f"{error})")
        print(f"rdvae eval: {len(report.failed)} of {tried} runs could not be evaluated "
              f"({', '.join(report.failed)}); the rows of the others are written", file=sys.stderr)
    return {"sweep": str(report.sweep), "results": str(report.results), "unfinished": report.unfinished,
            "failed": report.failed,
            "runs": {run_dir: evaluation.result for run_dir, evaluation in report.evaluated.items()}}


def random_subset(x, n: int, seed: int):
    """n examples of x drawn with `seed`, in their order in x, and a phrase saying so
    (rdvae.evaluate.run.random_subset)."""
    from ..evaluate.run import random_subset as draw

    index, phrase = draw(len(x), n, seed)
    return x[index.to(x.device)], phrase


def run_betas(args, measures: dict) -> dict:
    """One evaluation per beta of a multi-rate run, each a results.csv row as a sweep writes it."""
    from ..rundir import RunDir
    from ..sweep.beta_rows import evaluate_at_betas
    from ..sweep.results import RESULTS_FILE, format_rows
    from ..train import load_run
    from ..train.config import run_record
    from . import UserError

    folder = RunDir(args.run_dir)
    folder.read_config()   # a run folder (or FileNotFoundError), before the lock is taken in it
    with folder.lock("rdvae eval"):   # it writes RUN_DIR/results.csv
        trained = load_run(args.run_dir, device=args.device)
        if trained.changed_plugins:   # accepted (--accept-plugin-changes): the readings are the new code's
            trained.run.write_config(run_record(trained.config, trained.run.path))
        split = args.split or trained.config.final_split
        x = trained.dataset.split(split)
        if args.examples is not None and args.examples < len(x):
            x, subset = random_subset(x, args.examples, args.seed)
            print(f"evaluating {subset}")
        try:
            rows = evaluate_at_betas(trained, x, args.betas, split, batch_size=args.batch_size,
                                     seed=args.seed, precision=args.precision, progress=args.progress,
                                     measures=measures)
        except ValueError as err:
            raise UserError(f"{err} (rdvae eval --betas)") from None
    path = trained.run / RESULTS_FILE
    print(f"{args.run_dir} ({trained.config.family} on {trained.config.dataset}, {split} split), one row "
          f"per beta in {path}")
    print(format_rows(rows, ["beta", "mutual_info", "active_units"]))
    return {"results": str(path), "rows": rows}
