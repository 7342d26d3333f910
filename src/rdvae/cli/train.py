"""`rdvae train`: train one model into a run directory."""

from __future__ import annotations

import re
from pathlib import Path

from ..settings import add_flags, flag_names
from ..train.config import TrainConfig
from .options import add_common, add_tracking, parse_assignment, tracking_settings

# the config fields that are `rdvae train` (and `rdvae sweep`) flags, as TrainConfig declares them; every
# flag defaults to None so that only what is given counts
FLAGS = flag_names(TrainConfig)


def add_config_flags(parser, hidden: tuple[str, ...] = ()) -> None:
    """One --flag per TrainConfig field declared a flag, with its help, its default and its choices
    where there are some (rdvae.settings.add_flags); `hidden` ones are left out of --help."""
    add_flags(parser, TrainConfig, hidden)


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train a VAE",
        description="Train a VAE and write config.json, metrics.jsonl, summary.json and "
                    "model.safetensors into --out. Every config field can be set with --set FIELD=VALUE "
                    "(JSON values); model, data, objective and optimizer options with --set "
                    "model.NAME=VALUE, data.NAME=VALUE, objective_options.NAME=VALUE, "
                    "optimizer_options.NAME=VALUE (`rdvae list families` shows the model options).")
    add_config_flags(p)
    p.add_argument("--set", dest="assignments", action="append", type=parse_assignment,
                   default=[], metavar="KEY=VALUE",
                   help="set any config field (JSON values; repeat for several), e.g. "
                        "--set model.hidden=[256,256]")
    add_tracking(p)
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint (default: start a new run)")
    p.add_argument("--nproc", type=int, default=None, metavar="N",
                   help="train data-parallel in N processes on this machine, started with torchrun "
                        "(`torchrun --standalone --nproc-per-node N $(which rdvae) train ...`); --batch-size "
                        "is the global batch, split over them (default: one process)")
    add_common(p, out_help="the run directory (default: runs/DATASET-FAMILY-OBJECTIVE-seedSEED)")
    p.set_defaults(handler=run)


def overrides_from(args) -> dict:
    """The config fields the command line gives (flags, then --set), model options nested."""
    from ..train.config import nest_model_options

    given = {name: getattr(args, name) for name in FLAGS if getattr(args, name) is not None}
    if args.plugins:
        given["plugins"] = list(args.plugins)
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


def launch(args) -> dict:
    """`--nproc N`: the same command under torchrun with N processes on this machine."""
    import subprocess
    import sys

    from . import UserError

    if args.nproc < 1:
        raise UserError(f"--nproc must be an integer >= 1, got {args.nproc}")
    argv = list(getattr(args, "argv", None) or sys.argv[1:])
    rest, skip = [], False
    for token in argv:
        if skip:
            skip = False
        elif token == "--nproc":
            skip = True
        elif not token.startswith("--nproc="):
            rest.append(token)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={args.nproc}",
               "-m", "rdvae", *rest]
    code = subprocess.run(command, check=False).returncode
    if code != 0:
        raise UserError(f"the {args.nproc} training processes ended with exit status {code} (their messages "
                        "are above); continue the run with --resume --out RUN")
    return {"nproc": args.nproc}


def run(args) -> dict:
    from ..engine import distributed
    from ..evaluate import format_report
    from ..rundir import RunDir
    from ..train import train
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
    if args.nproc is not None and args.nproc != 1 and not distributed.launched():
        return launch(args)
    distributed.init(config.device)   # under torchrun: join the group (a single process: nothing)
    main = distributed.is_main()
    try:
        summary = train(config, out, resume=args.resume, progress=args.progress)
    except BaseException:
        distributed.shutdown()
        raise
    distributed.shutdown(completed=True)
    if main:
        print(f"run: {out}")
        print(format_report(summary))
    return {**summary, "run_dir": out}
