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
    result = evaluate_model(trained.model, x, iw_samples=args.iw_samples,
                            batch_size=args.batch_size, seed=args.seed,
                            precision=args.precision or config.precision, progress=args.progress)
    result["split"] = split
    if split == config.final_split and len(x) == len(trained.dataset.split(split)):
        trained.run.update_summary(**result)
    else:
        write_json(trained.run / f"eval-{split}.json", result)
    print(f"{args.run_dir} ({config.family} on {config.dataset}, {split} split)")
    print(format_report(result, dims=math.prod(trained.dataset.event_shape)))
    return result
