"""Data-parallel training on a CPU (issue 31): 2 processes x 1 thread (torchrun, gloo) against 1 process x
2 threads, the same global batch, in one run; the all-reduce's share of a data-parallel step; and, on
paper, what the same families would cost per step at 8 GPUs.

    OMP_WAIT_POLICY=PASSIVE RDVAE_DATA=/work/shared/data python benchmarks/ddp_cpu.py [--families mlp,-+-]

For each family the two setups train alternately (A B A B ..., `--rounds` each) on binarized MNIST (or
random binary images of its size, benchmarks/stand_in.py), each round `--steps` timed steps of the one
loop (rdvae.engine.Loop.step: forward, backward, all-reduce of gradients and figures under torchrun,
the guard, fused Adam) after `--warmup` untimed ones. Examples per second = global batch x steps /
wall seconds of rank 0 (the ranks move in lockstep); the all-reduce time is measured around every
torch.distributed.all_reduce of the step on rank 0 (it includes waiting for the slower rank).

On paper, per family: the floating-point operations of one step at the global batch (forward and
backward, torch.utils.flop_counter on this CPU), the bytes each GPU sends and receives in a ring
all-reduce of the gradients (2 (W-1)/W x 4 bytes x parameters), and from them the step at W = 8 GPUs
with the ASSUMED throughputs given by --gpu-tflops (sustained, not peak) and --nccl-gbps (all-reduce bus
bandwidth). rdvae averages gradients after the backward pass (no overlap), so the efficiency is
compute / (compute + all-reduce), latency terms ignored: small models on GPUs are bound by kernel-launch
latency, which this estimate does not model. A GPU measurement replaces these numbers when one is lent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve()


def _setup(family: str, batch: int, out: Path):
    from stand_in import binarized_mnist_or_random

    from rdvae.rundir import RunDir
    from rdvae.train import TrainConfig
    from rdvae.train.loop import vae_loop

    data = binarized_mnist_or_random()
    config = TrainConfig.from_dict({"dataset": data.name, "family": family, "batch_size": batch, "epochs": 1,
                                    "seed": 0, "device": "cpu"})
    loop = vae_loop(config, RunDir(out), dataset=data, progress=False)
    return loop


def worker(family: str, batch: int, steps: int, warmup: int, out: Path) -> dict:
    """One setup's timed steps (rank 0 reports)."""
    import torch.distributed as dist

    from rdvae.engine import distributed

    group = distributed.init("cpu")
    torch.manual_seed(0)
    loop = _setup(family, batch, out)
    reduce_seconds = [0.0]
    original = dist.all_reduce

    def timed_all_reduce(*args, **kwargs):
        started = time.perf_counter()
        result = original(*args, **kwargs)
        reduce_seconds[0] += time.perf_counter() - started
        return result

    dist.all_reduce = timed_all_reduce
    batches = loop.plan.epoch_batches(loop.shuffle, loop.shuffle, 0)
    for _ in range(warmup):
        loop.step(next(batches)).tolist()
    reduce_seconds[0] = 0.0
    started = time.perf_counter()
    for _ in range(steps):
        figures = loop.step(next(batches))
    figures.tolist()
    seconds = time.perf_counter() - started
    distributed.shutdown()
    return {"seconds": seconds, "reduce_seconds": reduce_seconds[0], "steps": steps, "batch": batch,
            "world_size": group.world_size if group else 1, "threads": torch.get_num_threads()}


def run_setup(family: str, batch: int, steps: int, warmup: int, processes: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        result = Path(folder) / "result.json"
        args = [str(HERE), f"--worker={family}", "--batch", str(batch), "--steps", str(steps), "--warmup",
                str(warmup), "--result", str(result), "--out", str(Path(folder) / "run")]
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": str(2 // processes)}
        if processes == 1:
            command = [sys.executable, *args]
        else:
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                       f"--nproc-per-node={processes}", *args]
        subprocess.run(command, env=env, check=True, capture_output=True, text=True,
                       cwd=HERE.parent)
        return json.loads(result.read_text())


def on_paper(family: str, batch: int, gpus: int, tflops: float, gbps: float) -> dict:
    """FLOPs of one step at the global batch, gradient bytes, and the estimated 8-GPU efficiency."""
    from torch.utils.flop_counter import FlopCounterMode

    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(0)
        loop = _setup(family, batch, Path(folder) / "run")
        x = next(loop.plan.epoch_batches(loop.shuffle, loop.shuffle, 0))
        with FlopCounterMode(display=False) as counter:
            out = loop.plan.training_step(x, 0, 0)
            out.loss.backward()
        params = sum(p.numel() for p in loop.plan.model.parameters() if p.requires_grad)
    flops = counter.get_total_flops()
    compute = flops / gpus / (tflops * 1e12)
    volume = 2 * (gpus - 1) / gpus * 4 * params
    communicate = volume / (gbps * 1e9)
    return {"flops": flops, "params": params, "bytes": volume, "compute_s": compute, "reduce_s": communicate,
            "efficiency": compute / (compute + communicate)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default="mlp,-+-", help="comma-separated families (default: mlp,-+-)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--gpu-tflops", type=float, default=30.0,
                        help="assumed sustained fp32/TF32 throughput of one GPU (TFLOP/s)")
    parser.add_argument("--nccl-gbps", type=float, default=100.0,
                        help="assumed NCCL all-reduce bus bandwidth (GB/s)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--result", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.families = [f for f in args.families.split(",") if f]
    if args.worker:
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        result = worker(args.worker, args.batch, args.steps, args.warmup, Path(args.out))
        if int(os.environ.get("RANK", "0")) == 0:
            Path(args.result).write_text(json.dumps(result))
        return

    machine = platform.processor() or platform.machine()
    print(f"# {machine}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"global batch {args.batch}, {args.steps} steps x {args.rounds} rounds per setup, alternating")
    print(f"# load average at the start: {os.getloadavg()[0]:.2f}")
    print("| family | 1 process x 2 threads (ex/s) | 2 processes x 1 thread (ex/s) | ratio 2x1 / 1x2 "
          "| all-reduce / step at world 2 |")
    print("|---|---|---|---|---|")
    for family in args.families:
        one, two = [], []
        for _ in range(args.rounds):
            one.append(run_setup(family, args.batch, args.steps, args.warmup, 1))
            two.append(run_setup(family, args.batch, args.steps, args.warmup, 2))
        rate = [r["batch"] * r["steps"] / r["seconds"] for r in one]
        rate2 = [r["batch"] * r["steps"] / r["seconds"] for r in two]
        share = [r["reduce_seconds"] / r["seconds"] for r in two]
        ratios = [b / a for a, b in zip(rate, rate2, strict=True)]
        print(f"| {family} | {statistics.median(rate):.0f} | {statistics.median(rate2):.0f} | "
              f"{statistics.median(ratios):.2f} (rounds {', '.join(f'{r:.2f}' for r in ratios)}) | "
              f"{statistics.median(share):.1%} |")
    print(f"# load average at the end: {os.getloadavg()[0]:.2f}")
    print()
    print(f"On paper at {args.gpus} GPUs (assumed {args.gpu_tflops:g} TFLOP/s sustained, "
          f"{args.nccl_gbps:g} GB/s all-reduce bus bandwidth; latency not modelled):")
    print()
    print("| family | parameters | GFLOP per step (batch) | all-reduce MB per GPU | compute ms "
          "| all-reduce ms | efficiency |")
    print("|---|---|---|---|---|---|---|")
    for family in args.families:
        p = on_paper(family, args.batch, args.gpus, args.gpu_tflops, args.nccl_gbps)
        print(f"| {family} | {p['params']:,} | {p['flops'] / 1e9:.1f} | {p['bytes'] / 1e6:.1f} | "
              f"{p['compute_s'] * 1e3:.3f} | {p['reduce_s'] * 1e3:.3f} | {p['efficiency']:.0%} |")


if __name__ == "__main__":
    main()
