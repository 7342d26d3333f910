"""A process of the distributed-training tests (tests/engine/test_distributed.py), started by torchrun or
alone: trains a small plan with rdvae.engine.fit into a run folder.

    python ddp_worker.py RUN --epochs E [--resume] [--noisy] [--examples N] [--batch B] [--nan-rank R]

The plan is least squares by SGD: without --noisy its steps draw nothing at random, so a data-parallel
run must give the single process's weights up to float rounding; with --noisy each step adds Gaussian
noise to the weights it evaluates (per-rank draws, checkpointed), which an exact resume must replay.
--nan-rank R makes rank R's loss NaN from step 3 on (the divergence rules must stop every rank)."""

import argparse
import json
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # the repository, for tests.engine.test_loop

from tests.engine.test_loop import LeastSquares as Base  # noqa: E402

from rdvae.engine import FitOptions, MetricsFile, SkipLimits, Step, TrainingDiverged, distributed, fit  # noqa: E402


class LeastSquares(Base):
    """test_loop's least squares by SGD, with optional noise and a NaN loss on one rank."""

    def __init__(self, n: int, batch: int, noisy: bool, nan_rank: int | None):
        super().__init__(n=n, batch=batch, lr=0.05)
        self.noisy, self.nan_rank = noisy, nan_rank

    def training_step(self, batch, step, index):
        x, y = batch
        weight = self.model.weight
        if self.noisy:
            weight = weight + 0.01 * torch.randn_like(weight)
        residual = (x @ weight.T).squeeze(1) - y
        loss = residual.pow(2).mean()
        group = distributed.current()
        if self.nan_rank is not None and group is not None and group.rank == self.nan_rank and step >= 3:
            loss = loss * math.nan
        return Step(loss, {"loss": loss, "abs_error": residual.abs().mean()})

    def validate(self, loop, train_means):
        return {f"train_{name}": value for name, value in train_means.items()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--examples", type=int, default=37)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--noisy", action="store_true")
    parser.add_argument("--nan-rank", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    distributed.init("cpu")
    torch.manual_seed(0)   # the same weights on every rank and in every process (as the VAE plan seeds)
    plan = LeastSquares(args.examples, args.batch, args.noisy, args.nan_rank)
    try:
        summary = fit(plan, args.run, FitOptions(epochs=args.epochs, progress=False),
                      [SkipLimits(max_consecutive=0), MetricsFile()], resume=args.resume)
    except TrainingDiverged as err:
        print(f"diverged on rank {distributed.current().rank if distributed.current() else 0}: {err}",
              file=sys.stderr)
        return 3
    finally:
        distributed.shutdown()
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
