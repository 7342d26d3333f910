"""The one loop's training step against the VAE trainer's step it replaced (issue 28), in one process.

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE RDVAE_DATA=/work/shared/data python benchmarks/engine_step.py

"engine" is what rdvae.engine.Loop does per step on the VAE plan: Loop.step (the plan's training_step,
backward, the device-side guard, fused Adam) and the epoch's figure sums. "trainer" is the same work
as the VAE Trainer did it at commit 940560d, copied below (`trainer_step`): the objective called
directly, the figures stacked by hand, the terms summed apart. "engine + idle callbacks" is the loop
with 8 more callbacks that hook nothing per step (an idle callback must cost nothing). The three run
on three copies of the same model from the same weights, steps interleaved one by one in rotating
order over the same batches, so machine load hits all alike; before timing, engine and trainer take
the same steps and must end bit-identical. Target: engine within 2 % of trainer (`mlp`, batch 128).
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

from rdvae.device import autocast
from rdvae.engine import Callback, Loop
from rdvae.engine.loop import gradient_norm
from rdvae.rundir import RunDir
from rdvae.train import TrainConfig
from rdvae.train.loop import vae_loop


class Idle(Callback):
    """A callback with state and no per-step hook."""

    def __init__(self, name: str):
        self.name = name

    def on_epoch_end(self, loop, record):
        pass

    def state_dict(self):
        return {"idle": True}


def trainer_step(loop: Loop, x: torch.Tensor, sums: torch.Tensor, term_sums: dict) -> torch.Tensor:
    """Trainer.step and run_epoch's per-step sums as of commit 940560d, on the loop's plan."""
    plan, config, counters, optimizer = loop.plan, loop.plan.config, loop.counters, loop.optimizers[0]
    for group in optimizer.param_groups:
        group["lr"] = config.lr * plan.lr_factor(counters["step"])
    with autocast(config.precision, loop.device):
        out = plan.objective(plan.model, x, counters["step"])
    loss = out.loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = gradient_norm(loop.params[0])
    ok = torch.isfinite(loss) & torch.isfinite(norm) & (norm <= config.skip_grad_norm)
    on_device = getattr(optimizer, "_step_supports_amp_scaling", False) and bool(optimizer.state)
    if on_device or ok:
        if on_device:
            optimizer.found_inf = (~ok).float()
            try:
                optimizer.step()
            finally:
                del optimizer.found_inf
        else:
            optimizer.step()
    loop.pending_skips.append((counters["step"], ok))
    if len(loop.pending_skips) >= 64:
        loop.count_skips()
    figures = torch.stack([loss.detach(), out.rate.detach().mean(), out.distortion.detach().mean(),
                           ok.to(loss.dtype)])
    step_terms = {name: torch.where(ok, value.detach().float().mean(), 0.0)
                  for name, value in (getattr(out, "terms", None) or {}).items()}
    figures = torch.where(ok, figures, 0.0)
    sums += figures.double() * len(x)
    for name, value in step_terms.items():
        term_sums[name] = term_sums.get(name, 0.0) + value.double() * len(x)
    return figures


def engine_step(loop: Loop, x: torch.Tensor, sums: list) -> torch.Tensor:
    """Loop.step and run_epoch's per-step sums."""
    figures = loop.step(x)
    if not sums:
        sums.append(torch.zeros(len(figures), dtype=torch.float64))
    sums[0] += figures.double() * len(x)
    return figures


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", default="mlp")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per variant per round")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    ds = binarized_mnist_or_random()
    g = torch.Generator().manual_seed(0)
    batches = [ds.train[torch.randint(len(ds.train), (args.batch_size,), generator=g)]
               for _ in range(args.steps)]
    config = TrainConfig(dataset=ds.name, family=args.family, batch_size=args.batch_size,
                         device="cpu").validated(data_given=True)
    with tempfile.TemporaryDirectory() as tmp:
        extra = {"engine + idle callbacks": [Idle(f"idle{i}") for i in range(8)]}
        loops = {name: vae_loop(config, RunDir(Path(tmp) / name), dataset=ds, progress=False,
                                callbacks=extra.get(name, ()))
                 for name in ("engine", "trainer", "engine + idle callbacks")}
        idle = loops["engine + idle callbacks"]
        engine_sums, trainer_sums, idle_sums, terms = [], torch.zeros(4, dtype=torch.float64), [], {}
        run = {"engine": lambda x: engine_step(loops["engine"], x, engine_sums),
               "trainer": lambda x: trainer_step(loops["trainer"], x, trainer_sums, terms),
               "engine + idle callbacks": lambda x: engine_step(idle, x, idle_sums)}
        for i, x in enumerate(batches):   # the same steps from the same weights: bit-identical
            for name, step in run.items():
                torch.manual_seed(i)
                step(x)
                loops[name].counters["step"] += 1
        engine, trainer = (loops[name].plan.model.parameters() for name in ("engine", "trainer"))
        identical = all(torch.equal(a, b) for a, b in zip(engine, trainer, strict=True))
        times = {name: [] for name in run}
        names = list(run)
        for r in range(args.rounds):
            for i, x in enumerate(batches):
                shift = (r + i) % len(names)
                for name in names[shift:] + names[:shift]:
                    start = time.perf_counter()
                    run[name](x)
                    times[name].append(time.perf_counter() - start)
                    loops[name].counters["step"] += 1
    step = {name: statistics.median(t) for name, t in times.items()}
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; data: {ds.name}; model: {args.family}, "
          f"batch {args.batch_size}; {args.rounds} rounds x {args.steps} steps per variant\n")
    print(f"engine and trainer parameters bit-identical after {len(batches)} steps from the same weights, "
          f"batches and seeds: {identical}\n")
    print("| step | median ms / step | examples/s | time / trainer's |")
    print("|---|---|---|---|")
    for name in names:
        print(f"| {name} | {1e3 * step[name]:.3f} | {args.batch_size / step[name]:.0f} | "
              f"{step[name] / step['trainer']:.4f} |")
    return {"identical": identical, "seconds": step,
            "ratio": {name: step[name] / step["trainer"] for name in names}}


if __name__ == "__main__":
    main()
