"""Seconds per training step of the twelve "Fixing a Broken ELBO" families at a broken-elbo
scale's sizes (forward, backward, Adam; random binary 28x28 images), to size that scale's grid.

    python benchmarks/family_steps.py                       # cpu scale, all 12 families, 1 thread
    python benchmarks/family_steps.py --scale paper --families=---,-+v --threads 2
    python benchmarks/family_steps.py --model pixelcnn_channels=16   # the cpu scale with another size

Prints a markdown table; docs/results/broken-elbo.md quotes one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from rdvae.studies.broken_elbo.study import FAMILIES, SCALES, mnist_spec
from rdvae.train import build_for_config


def step_seconds(config, batch: torch.Tensor, steps: int) -> float:
    model = build_for_config(config, tuple(batch.shape[1:]))
    optimizer = torch.optim.Adam(model.parameters(), config.lr)
    times = []
    for k in range(steps + 2):   # two warm-up steps
        started = time.perf_counter()
        out = model(batch)
        loss = (out.distortion + config.beta * out.rate).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if k >= 2:
            times.append(time.perf_counter() - started)
    return statistics.median(times), model.num_parameters()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="cpu", choices=sorted(SCALES))
    parser.add_argument("--families", default=",".join(FAMILIES),
                        help="comma-separated family codes, e.g. --families=---,-+v")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", action="append", default=[], metavar="KEY=VALUE",
                        help="override one of the scale's model options (JSON value; repeatable), "
                             "e.g. --model pixelcnn_channels=16")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    overrides = {}
    if args.model:
        changed = {}
        for item in args.model:
            key, _, value = item.partition("=")
            changed[key] = json.loads(value)
        overrides["model"] = {**SCALES[args.scale]["model"], **changed}
    pairs = [(family, 1.0) for family in args.families.split(",")]
    spec = mnist_spec(args.scale, pairs=pairs, overrides=overrides)
    batch_size = SCALES[args.scale]["batch_size"]
    batch = (torch.rand(batch_size, 1, 28, 28) < 0.13).float()
    print("| family | parameters | batch | threads | s / step |\n|---|---|---|---|---|")
    for index, point in enumerate(spec.points):
        seconds, params = step_seconds(spec.config(index), batch, args.steps)
        print(f"| `{point['family']}` | {params} | {batch_size} | {args.threads} | {seconds:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
