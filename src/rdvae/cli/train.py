"""`rdvae train`: train one model into a run directory."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from .options import add_common, add_tracking, parse_assignment, tracking_settings

# CLI flag -> config field; every flag defaults to None so that only what is given counts
FLAGS = {
    "dataset": str, "binarize": str, "family": str, "latent_dim": int, "beta": float,
    "target_rate": float, "free_bits": float, "kl_anneal_steps": int, "epochs": int,
    "batch_size": int, "lr": float, "lr_schedule": str, "seed": int, "precision": str,
    "device": str, "iw_samples": int, "beta_min": float, "beta_max": float, "objective": str,
    "plateau_epochs": int, "plateau_nats": float, "decay_epochs": int,
}
FLAG_HELP = {
    "dataset": "a registered dataset (`rdvae list datasets`) or a path: .npy / .npz array, folder of images",
    "binarize": "grey levels: static, dynamic (fresh draws every batch), threshold, or auto (dynamic when a "
                "binary likelihood meets grey levels); --set binarize=null keeps them as they are",
    "family": "a paper code such as -+v, or a registered family (`rdvae list families`)",
    "latent_dim": "latent dimensions",
    "beta": "weight of the rate R in D + beta R",
    "target_rate": "train with D + |sigma - R| towards this rate (nats); null: off",
    "free_bits": "no pressure on rates below this many nats: D + beta max(lambda, R); null: off",
    "kl_anneal_steps": "ramp the rate's weight from 0 to 1 over this many steps",
    "epochs": "passes over the training split",
    "batch_size": "examples per update",
    "lr": "Adam's learning rate",
    "lr_schedule": "constant, paper (constant for half the epochs, then linearly to 0), cosine "
                   "(5%% warm-up, cosine decay to 0) or plateau (constant until the validation objective "
                   "plateaus, see --plateau-epochs, then linearly to 0 over --decay-epochs, then stop)",
    "plateau_epochs": "k: stop improving = the best validation objective of the last k epochs is less than "
                      "--plateau-nats below the best before them (KL-annealing epochs not counted); "
                      "ends training (or starts the plateau schedule's decay); 0: off",
    "plateau_nats": "the improvement over --plateau-epochs epochs that still counts as progress (nats)",
    "decay_epochs": "lr_schedule plateau: epochs of linear decay to 0 after the plateau (it starts this many "
                    "epochs before --epochs at the latest)",
    "seed": "seed of the weights, the batches and the Monte Carlo draws",
    "precision": "fp32, bf16 or auto (bf16 where the device multiplies it natively)",
    "device": "auto (CUDA when present), cpu, cuda, cuda:N or mps",
    "iw_samples": "importance samples for the IW-NLL in the final summary (0: skip)",
    "beta_min": "multi-rate: lower end of the beta range",
    "beta_max": "multi-rate: upper end of the beta range",
    "objective": "a registered objective (`rdvae list objectives`; its options with --set "
                 "objective_options.NAME=VALUE)",
}


def add_config_flags(parser, hidden: tuple[str, ...] = ()) -> None:
    """One --flag per FLAGS field, with its help, its default and its choices where there are some."""
    from dataclasses import fields

    from ..device import PRECISIONS
    from ..registry import OBJECTIVES
    from ..train import TrainConfig
    from ..train.config import LR_SCHEDULES

    choices = {"lr_schedule": LR_SCHEDULES, "precision": PRECISIONS}
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    for name, kind in FLAGS.items():
        default = defaults[name]
        help_text = FLAG_HELP[name]
        if name == "objective":   # what is registered now, built-ins and plugins alike
            help_text += ": " + ", ".join(sorted(OBJECTIVES.names()))
        shown = "the family's" if name == "latent_dim" else (
            "from the fields set: multi-rate, target-rate, free-bits, else beta" if name == "objective"
            else json.dumps(default))
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None,
                            metavar=name.upper(),
                            choices=choices.get(name),
                            help=argparse.SUPPRESS if name in hidden else
                            f"{help_text} (default: {shown})")


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train a VAE",
        description="Train a VAE and write config.json, metrics.jsonl, summary.json and "
                    "model.safetensors into --out. Every config field can be set with --set FIELD=VALUE "
                    "(JSON values); model, data and objective options with --set model.NAME=VALUE, "
                    "data.NAME=VALUE, objective_options.NAME=VALUE (`rdvae list families` shows them).")
    add_config_flags(p)
    p.add_argument("--normalized-gradients", action="store_const", const=True, default=None,
                   help="normalize each parameter's gradient before Adam (as in the paper; default: off)")
    p.add_argument("--multi-rate", action="store_const", const=True, default=None,
                   help="Multi-Rate VAE: one run learns every beta in [--beta-min, --beta-max] "
                        "(a beta-conditioned family such as mr-mlp; evaluate with eval --betas; "
                        "default: off)")
    p.add_argument("--set", dest="assignments", action="append", type=parse_assignment,
                   default=[], metavar="KEY=VALUE",
                   help="set any config field (JSON values; repeat for several), e.g. "
                        "--set model.hidden=[256,256]")
    add_tracking(p)
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint (default: start a new run)")
    add_common(p, out_help="the run directory (default: runs/DATASET-FAMILY-OBJECTIVE-seedSEED)")
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
    return nest_model_options({**given, **tracking_settings(args), **dict(args.assignments)})


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
    from ..train.config import OPTION_FIELDS, read_run_config
    from . import UserError

    given = overrides_from(args)
    if args.resume:
        if not args.out:
            raise UserError("--resume needs --out RUN_DIR")
        saved = read_run_config(RunDir(args.out))[0].to_dict()
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
