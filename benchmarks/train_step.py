"""The training step of the real loop (rdvae.engine.Loop.step on the VAE plan) against the step it
replaced, and against the matrix-multiply rate, all in one process.

    OMP_WAIT_POLICY=PASSIVE RDVAE_DATA=/work/shared/data python benchmarks/train_step.py
    python benchmarks/train_step.py --family mlp --batch-size 128 --rounds 10 --steps 20

"rdvae" is `Loop.step`: the update guard decided on the device (fused Adam's found_inf) and the
decoder's BernoulliLikelihood. "plain" is the same model and optimizer with the step as it was
before (commit b3fe3b8): torch.distributions' Independent(Bernoulli) for the decoder, and the guard
`not torch.isfinite(loss)`, `clip_grad_norm_(params, inf)`, `math.isfinite(norm)`, `norm <= limit`
on the host. Rounds alternate a window of 1024^3 matrix products through F.linear (the reference
rate, as in benchmarks/throughput.py) with `--steps` steps of each trainer, interleaved one by one
in alternating order, so machine load hits all three alike. "fraction of matmul" is the step's
matrix-multiply FLOPs (torch.utils.flop_counter) per second over the median reference rate.

Before timing, both trainers take `--steps` steps from the same weights on the same batches and the same
seeds: their parameters must come out bit-identical (printed). Uses $RDVAE_DATA's binarized MNIST
when present, else random binary images of the same shape.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import tempfile
import time
import types
from pathlib import Path

import torch
from stand_in import binarized_mnist_or_random
from torch.distributions import Bernoulli, Independent
from torch.utils.flop_counter import FlopCounterMode

from rdvae.engine import Loop
from rdvae.rundir import RunDir
from rdvae.train import TrainConfig
from rdvae.train.loop import vae_loop
from rdvae.train.schedules import lr_factor


def dataset():
    return binarized_mnist_or_random()


def plain_decoder_forward(self, z):
    """BernoulliDecoder.forward as of commit b3fe3b8: torch's Independent(Bernoulli)."""
    base = Bernoulli(logits=self.trunk(z).float(), validate_args=False)
    return Independent(base, len(self.event_shape), validate_args=False)


def plain_step(loop: Loop, x: torch.Tensor) -> torch.Tensor | None:
    """The trainer's step as of commit b3fe3b8 (the skip bookkeeping left out: no step is skipped here)."""
    config, counters, optimizer = loop.plan.config, loop.counters, loop.optimizers[0]
    for group in optimizer.param_groups:
        group["lr"] = config.lr * lr_factor(config.lr_schedule, counters["step"], loop.total_steps)
    out = loop.plan.objective(loop.plan.model, x, counters["step"])
    loss = out.loss
    optimizer.zero_grad(set_to_none=True)
    skip = not torch.isfinite(loss)
    if not skip:
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(loop.params[0], math.inf)
        skip = not (math.isfinite(grad_norm) and grad_norm <= config.skip_grad_norm)
    if skip:
        return None
    optimizer.step()
    return torch.stack([loss.detach(), out.rate.detach().mean(), out.distortion.detach().mean()])


def make_trainers(ds, family: str, batch_size: int, root: Path) -> tuple[Loop, Loop]:
    config = TrainConfig(dataset=ds.name, family=family, batch_size=batch_size,
                         device="cpu").validated(data_given=True)
    new = vae_loop(config, RunDir(root / "new"), dataset=ds, progress=False)
    plain = vae_loop(config, RunDir(root / "plain"), dataset=ds, progress=False)
    decoder = plain.plan.model.decoder
    decoder.forward = types.MethodType(plain_decoder_forward, decoder)
    return new, plain


def matmul_rate(seconds: float, n: int = 1024) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.nn.functional.linear(a, b)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.nn.functional.linear(a, b)
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - start)


def identical_after(new: Loop, plain: Loop, batches) -> bool:
    for i, x in enumerate(batches):
        torch.manual_seed(i)
        new.step(x)
        torch.manual_seed(i)
        plain_step(plain, x)
    new.count_skips()
    return new.counters["skipped"] == 0 and all(
        torch.equal(a, b) for a, b in zip(new.plan.model.parameters(), plain.plan.model.parameters(),
                                          strict=True))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", default="mlp")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per trainer per round")
    parser.add_argument("--matmul-seconds", type=float, default=1.0, help="reference window per round")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    ds = dataset()
    g = torch.Generator().manual_seed(0)
    batches = [ds.train[torch.randint(len(ds.train), (args.batch_size,), generator=g)]
               for _ in range(args.steps)]
    with tempfile.TemporaryDirectory() as tmp:
        new, plain = make_trainers(ds, args.family, args.batch_size, Path(tmp))
        same = identical_after(new, plain, batches)
        with FlopCounterMode(display=False) as counter:
            new.step(batches[0])
        flops = counter.get_total_flops()
        times = {"plain": [], "rdvae": []}
        rates = []
        for r in range(args.rounds):
            rates.append(matmul_rate(args.matmul_seconds))
            for i, x in enumerate(batches):
                for name in (("plain", "rdvae") if (r + i) % 2 else ("rdvae", "plain")):
                    start = time.perf_counter()
                    if name == "rdvae":
                        new.step(x)
                    else:
                        plain_step(plain, x)
                    times[name].append(time.perf_counter() - start)
        new.count_skips()
    matmul = statistics.median(rates)
    step = {name: statistics.median(t) for name, t in times.items()}
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; data: {ds.name}; model: {args.family}, "
          f"batch {args.batch_size}; {args.rounds} rounds x {args.steps} steps\n")
    print(f"parameters of rdvae and plain bit-identical after {len(batches)} steps from the same weights, "
          f"batches and seeds: {same}\n")
    print(f"matmul reference: {matmul / 1e9:.1f} GFLOP/s (median of {len(rates)} windows, "
          f"{min(rates) / 1e9:.1f}-{max(rates) / 1e9:.1f}); {flops / 1e9:.3f} GFLOP per step\n")
    print("| step | ms / step | examples/s | GFLOP/s | fraction of matmul |")
    print("|---|---|---|---|---|")
    for name in ("plain", "rdvae"):
        print(f"| {name} | {1e3 * step[name]:.2f} | {args.batch_size / step[name]:.0f} | "
              f"{flops / step[name] / 1e9:.1f} | {flops / step[name] / matmul:.2f} |")
    print(f"\nplain / rdvae step time: {step['plain'] / step['rdvae']:.3f}")
    return {"identical": same, "matmul_flops": matmul, "flops_per_step": flops,
            "plain_seconds": step["plain"], "rdvae_seconds": step["rdvae"],
            "fraction": {name: flops / step[name] / matmul for name in step},
            "speedup": step["plain"] / step["rdvae"], "skipped": new.counters["skipped"]}


if __name__ == "__main__":
    main()
