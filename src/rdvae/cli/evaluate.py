"""`rdvae eval RUN_DIR`: measure a trained run on a split."""

from __future__ import annotations

import math

from .options import add_common


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a trained run (R, D, ELBO, IW-NLL, MI, active units)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--iw-samples", type=int, default=0,
                   help="importance samples for the IW negative log-likelihood (0: skip)")
    p.add_argument("--split", default=None, help="train, valid or test (default: the run's final split)")
    p.add_argument("--examples", type=int, default=None,
                   help="evaluate only the first N examples of the split (a quick look; not stored "
                        "in summary.json)")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", default=None, help="fp32 or bf16 (default: the run's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--betas", type=float, nargs="+", default=None, metavar="BETA",
                   help="multi-rate runs: evaluate at each beta and write one row per beta to "
                        "RUN_DIR/results.csv (the sweep format, so `rdvae plot RUN_DIR` draws the curve)")
    p.add_argument("--surgery", action="store_true",
                   help="also the ELBO surgery of the rate: average KL = index-code MI + marginal KL, "
                        "marginal KL = total correlation + dimension-wise KL (+ marginal dependence), "
                        "q(z) summed over the whole split; stored as surgery_* keys")
    p.add_argument("--surgery-points", type=int, default=None, metavar="M",
                   help="draws of z for the surgery's outer expectation (default: one per example)")
    p.add_argument("--surgery-split-points", type=int, default=5000, metavar="M",
                   help="draws used for the total correlation / dimension-wise split, which costs "
                        "N x d per draw (default 5000; 0: skip the split)")
    add_common(p, out=False)
    p.set_defaults(handler=run)


def run(args) -> dict:
    from ..evaluate import evaluate_model, format_report
    from ..rundir import write_json
    from ..train import load_run
    from . import UserError

    trained = load_run(args.run_dir, device=args.device)
    config = trained.config
    split = args.split or config.final_split
    x = trained.dataset.split(split)
    if args.examples is not None:
        if args.examples < 1:
            raise UserError(f"--examples must be >= 1, got {args.examples}")
        x = x[:args.examples]
    if args.betas is not None:
        return run_betas(args, trained, x, split)
    result = evaluate_model(trained.model, x, iw_samples=args.iw_samples,
                            batch_size=args.batch_size, seed=args.seed,
                            precision=args.precision or config.precision, progress=args.progress)
    result["split"] = split
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
