"""Cost of one multi-rate training step against one beta-VAE step, measured in one process.

    python benchmarks/multi_rate.py                        # mr-mlp vs mlp on binarized MNIST
    python benchmarks/multi_rate.py --family conv --steps 20

Both trainers are the real loop (`rdvae.engine.Loop` on the VAE plan: forward, objective, backward,
gradient guard, Adam); the multi-rate one also draws a beta per example and runs every layer through its gate.
Steps of the two are interleaved one by one over the same minibatches (order alternating), so
machine load hits both alike; the ratio of the median step times is printed (the Multi-Rate VAE
paper reports at most 1.05x; our target is <= 1.2x). Uses $RDVAE_DATA's binarized MNIST when
present, else random binary images of the same shape. Single-threaded unless --threads says otherwise.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from stand_in import binarized_mnist_or_random

from rdvae.cli.options import parse_assignment
from rdvae.engine import Loop
from rdvae.rundir import RunDir
from rdvae.train import TrainConfig
from rdvae.train.loop import vae_loop

FAMILIES = {"mlp": ("mlp", "mr-mlp"), "conv": ("---", "mr-conv")}


def dataset():
    return binarized_mnist_or_random()


def trainer(ds, family: str, multi_rate: bool, batch_size: int, root: Path, model: dict | None = None
            ) -> Loop:
    config = TrainConfig(dataset=ds.name, family=family, multi_rate=multi_rate,
                         batch_size=batch_size, device="cpu", model=model or {}).validated(data_given=True)
    return vae_loop(config, RunDir(root / family), dataset=ds, progress=False)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", choices=sorted(FAMILIES), default="mlp")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per trainer per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", nargs="*", default=[], type=parse_assignment, metavar="KEY=VALUE",
                        help="multi-rate model options, e.g. latent_gate=true gate_output=false")
    args = parser.parse_args(argv)
    options = dict(args.model)
    torch.set_num_threads(args.threads)
    ds = dataset()
    plain_family, gated_family = FAMILIES[args.family]
    with tempfile.TemporaryDirectory() as tmp:
        plain = trainer(ds, plain_family, False, args.batch_size, Path(tmp))
        gated = trainer(ds, gated_family, True, args.batch_size, Path(tmp), options)
        g = torch.Generator().manual_seed(0)
        batches = [ds.train[torch.randint(len(ds.train), (args.batch_size,), generator=g)]
                   for _ in range(args.steps)]
        for t in (plain, gated):   # warm-up
            for x in batches[:5]:
                t.step(x)
        times = {"plain": [], "multi-rate": []}
        pairs = [("plain", plain), ("multi-rate", gated)]
        for r in range(args.rounds):
            for i, x in enumerate(batches):   # interleaved step by step, order alternating
                for name, t in pairs[::-1] if (r + i) % 2 else pairs:
                    start = time.perf_counter()
                    t.step(x)
                    times[name].append(time.perf_counter() - start)
        params = (plain.plan.model.num_parameters(), gated.plan.model.num_parameters())
    plain_ms = 1e3 * statistics.median(times["plain"])
    gated_ms = 1e3 * statistics.median(times["multi-rate"])
    result = {"dataset": ds.name, "family": args.family, "batch_size": args.batch_size,
              "threads": args.threads, "steps": args.steps * args.rounds,
              "plain_ms_per_step": plain_ms, "multi_rate_ms_per_step": gated_ms,
              "ratio": gated_ms / plain_ms, "plain_params": params[0], "multi_rate_params": params[1],
              "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}"}
    print(f"| family | data | batch | threads | beta-VAE step (ms) | multi-rate step (ms) | ratio | "
          f"params (beta-VAE / multi-rate) |\n|---|---|---|---|---|---|---|---|\n"
          f"| {plain_family} / {gated_family} | {ds.name} | {args.batch_size} | {args.threads} | "
          f"{plain_ms:.2f} | {gated_ms:.2f} | {gated_ms / plain_ms:.3f} | "
          f"{params[0]:,} / {params[1]:,} (+{100 * (params[1] / params[0] - 1):.2f}%) |")
    return result


if __name__ == "__main__":
    main()
