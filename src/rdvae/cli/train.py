"""`rdvae train`: train one model into a run directory."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from .options import add_common, parse_assignment

# CLI flag -> config field; every flag defaults to None so that only what is given counts
FLAGS = {
    "dataset": str, "binarize": str, "family": str, "latent_dim": int, "beta": float,
    "target_rate": float, "free_bits": float, "kl_anneal_steps": int, "epochs": int,
    "batch_size": int, "lr": float, "lr_schedule": str, "seed": int, "precision": str,
    "device": str, "iw_samples": int, "beta_min": float, "beta_max": float, "objective": str,
}


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train a VAE", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Train a VAE and write config.json, metrics.jsonl, summary.json and "
                    "model.safetensors into --out.")
    for name, kind in FLAGS.items():
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None)
    p.add_argument("--normalized-gradients", action="store_const", const=True, default=None,
                   help="normalize each parameter's gradient before Adam (as in the paper)")
    p.add_argument("--multi-rate", action="store_const", const=True, default=None,
                   help="Multi-Rate VAE: one run learns every beta in [--beta-min, --beta-max] "
                        "(a beta-conditioned family such as mr-mlp; evaluate with eval --betas)")
    p.add_argument("--set", dest="assignments", action="append", type=parse_assignment,
                   default=[], metavar="KEY=VALUE",
                   help="set any config field (JSON values), e.g. --set model.hidden=[256,256]")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint")
    add_common(p)
    p.set_defaults(handler=run)


def overrides_from(args) -> dict:
    """The config fields the command line gives (flags, then --set), model options nested."""
    from ..train.config import nest_model_options

    given = {name: getattr(args, name) for name in FLAGS if getattr(args, name) is not None}
    if args.plugins:
        given["plugins"] = list(args.plugins)
    if args.normalized_gradients:
        given["normalized_gradients"] = True
    if args.multi_rate:
        given["multi_rate"] = True
    return nest_model_options({**given, **dict(args.assignments)})


def default_out(config) -> str:
    family = re.sub(r"[^A-Za-z0-9]+", lambda m: "".join({"-": "s", "+": "c"}.get(c, "_")
                                                       for c in m.group()), config.family)
    objective = f"rate{config.target_rate:g}" if config.target_rate is not None else f"beta{config.beta:g}"
    if config.multi_rate:
        objective = f"multirate{config.beta_min:g}-{config.beta_max:g}"
    if config.objective is not None and not config.multi_rate:
        objective = f"{config.objective}-{objective}"
    dataset = Path(config.dataset).stem if "/" in config.dataset else config.dataset
    return f"runs/{dataset}-{family}-{objective}-seed{config.seed}"


def run(args) -> dict:
    from ..evaluate import format_report
    from ..rundir import RunDir
    from ..train import TrainConfig, train
    from ..train.config import OPTION_FIELDS
    from . import UserError

    given = overrides_from(args)
    if args.resume:
        if not args.out:
            raise UserError("--resume needs --out RUN_DIR")
        saved = TrainConfig.from_dict(RunDir(args.out).read_config()).to_dict()
        for name in OPTION_FIELDS:
            if name in given:
                given[name] = {**saved[name], **given[name]}
        if "plugins" in given:
            given["plugins"] = list(dict.fromkeys([*saved["plugins"], *given["plugins"]]))
        config = TrainConfig.from_dict({**saved, **given})
    else:
        config = TrainConfig.from_dict(given)  # unknown fields are rejected with suggestions
    out = args.out or default_out(config)
    summary = train(config, out, resume=args.resume, progress=args.progress)
    print(f"run: {out}")
    print(format_report(summary))
    return {**summary, "run_dir": out}
