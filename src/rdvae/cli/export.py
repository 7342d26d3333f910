"""`rdvae export RUN DIR`: a folder ready to publish, with a model card."""

from __future__ import annotations

from .options import add_common


def register(sub) -> None:
    p = sub.add_parser(
        "export", help="a folder ready to publish: weights, config, summary and a model card README.md",
        description="Copy a finished run's model.safetensors, config.json, summary.json and metrics.jsonl "
                    "into DIR and write README.md, a model card whose YAML front matter holds the figures "
                    "(model-index), the command that trains the run again and the data's SHA-256 "
                    "(huggingface_hub's ModelCard reads it). `rdvae eval DIR` and load_run(DIR) load it.")
    p.add_argument("run_dir", metavar="RUN", help="a finished run directory")
    p.add_argument("dir", metavar="DIR", help="the folder to write")
    add_common(p, out=False)
    p.set_defaults(handler=run)


def run(args) -> dict:
    from ..train.export import export_run
    from .options import out_directory

    out_directory(args.dir)
    result = export_run(args.run_dir, args.dir)
    print(f"{result['out']}: {', '.join(result['files'])}")
    return result
