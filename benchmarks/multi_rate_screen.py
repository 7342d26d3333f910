"""The short multi-rate runs behind docs/results/multi-rate.md, "What the gap is made of".

One multi-rate run with the `rdvae repro multi-rate --scale cpu` settings (mr-mlp, binarized
MNIST, batch 128, cosine lr, seed 0) for EPOCHS epochs, with one thing changed, then R, D and
D + beta R on the test split at the reproduction's betas:

    RDVAE_DATA=/work/shared/data OMP_NUM_THREADS=1 \\
        python benchmarks/multi_rate_screen.py runs/screen/k10 --epochs 10 --gate-slope-scale 10

--per-batch-beta draws one beta per minibatch (the paper's Algorithm 1) instead of one per
example; --ungated raw_variance removes the gate from the encoder's variance layer; --set passes
mr-mlp model options (latent_gate, gate_output: the runs recorded before they became the
defaults used latent_gate=false gate_output=true, "every layer gated"). --separate BETA trains
the plain `mlp` at that beta instead; --hidden the MLP widths (both kinds).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

import rdvae.model as model
from rdvae.cli.options import parse_assignment
from rdvae.evaluate import evaluate_model
from rdvae.objectives.multi_rate import MultiRateObjective
from rdvae.studies.multi_rate.study import BETAS, SCALES, _configs
from rdvae.train import TrainConfig, load_run, train


def ungate(name: str) -> None:
    """Build mr-mlp without the gate on one layer (the layer's plain version stays)."""
    if name == "raw_variance":
        gated = model.multi_rate_encoder

        def encoder(module, *args, **options):
            module = gated(module, *args, **options)
            module.raw_variance = module.raw_variance.layer
            return module
        model.multi_rate_encoder = encoder   # MultiRateVAE gates its encoder with it


def per_batch_beta() -> None:
    draw = MultiRateObjective.sample_beta
    MultiRateObjective.sample_beta = lambda self, n, device="cpu", generator=None: (
        draw(self, 1, device, generator).expand(n).contiguous())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--gate-slope-scale", type=float, default=10.0)
    p.add_argument("--gate-init", default="open")
    p.add_argument("--beta-max", type=float, default=10.0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-batch-beta", action="store_true")
    p.add_argument("--ungated", choices=["raw_variance"])
    p.add_argument("--separate", type=float, metavar="BETA")
    p.add_argument("--hidden", type=int, nargs="+", default=[512, 256])
    p.add_argument("--set", nargs="*", default=[], type=parse_assignment, metavar="KEY=VALUE",
                   help="mr-mlp model options, e.g. latent_gate=false gate_output=true")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.per_batch_beta:
        per_batch_beta()
    if args.ungated:
        ungate(args.ungated)
    base, multi_rate = _configs(SCALES["cpu"])
    common = dict(epochs=args.epochs, lr=args.lr, seed=args.seed)
    model = {**multi_rate.model, "hidden": args.hidden}
    if args.separate is not None:
        config = TrainConfig(**{**base, **common, "model": model, "beta": args.separate}).validated()
    else:
        config = dataclasses.replace(
            multi_rate, **common, beta_max=args.beta_max,
            model={**model, "gate_init": args.gate_init, "gate_slope_scale": args.gate_slope_scale,
                   **dict(args.set)}).validated()
    train(config, args.out, resume=True, progress=False)
    trained = load_run(args.out, device="cpu")
    x = trained.dataset.split("test")
    rows = []
    for beta in [args.separate] if args.separate is not None else BETAS:
        r = evaluate_model(trained.model, x, seed=0, diagnostics=False,
                           beta=None if args.separate is not None else beta)
        rows.append({"beta": beta, "rate": r["rate"], "distortion": r["distortion"],
                     "objective": r["distortion"] + beta * r["rate"]})
        print(f"beta {beta:g}: R {r['rate']:.2f}  D {r['distortion']:.2f}  "
              f"D + beta R {rows[-1]['objective']:.2f}", flush=True)
    (args.out / "screen.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
