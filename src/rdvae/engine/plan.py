"""A plan: what one training step is, for the one loop (rdvae.engine.fit).

The loop owns the run folder, checkpoints, exact resume, the update guard, precision and progress; a
plan owns its model and data and says how to take a step (in the spirit of Lightning's
LightningModule and scvi-tools' TrainingPlan, without their engines):

    class MyPlan(Plan):
        def __init__(self, model, x):
            self.model, self.x = model, x

        def configure_optimizers(self):
            return [build_optimizer("adam", self.model.parameters(), 1e-3)]

        def steps_per_epoch(self):
            return math.ceil(len(self.x) / 128)

        def epoch_batches(self, order, shuffle, start):
            perm = torch.randperm(len(self.x), generator=order)
            for b in range(start, self.steps_per_epoch()):
                yield self.x[perm[b * 128:(b + 1) * 128]]

        def training_step(self, batch, step, index):
            out = self.model(batch)
            return Step(out.loss, {"loss": out.loss, "rate": out.rate.mean()})

A plan with several optimizers (a GAN's discriminator and generator) is called once per optimizer and
step, `index` 0, 1, ... in the order configure_optimizers returned them; the loop does each backward
pass and update before asking for the next loss (Lightning's `optimizer_idx`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


@dataclass
class Step:
    """What a plan's training_step measured: the loss the loop minimises (a scalar tensor) and figures
    to average over the epoch (scalar tensors, batch means: e.g. loss, rate R, distortion D). The
    loop keeps the epoch's sums on the device (no host sync per step) and records each as
    train_<name>."""

    loss: Tensor
    figures: dict[str, Tensor] = field(default_factory=dict)


class Plan:
    """What one step is: the model whose weights are checkpointed, its optimizers, the epoch's
    batches and the loss of each batch; plus what the loop records after an epoch and at the end.
    Override what differs from the defaults below."""

    kind = "plan"                 # config.json's "kind" of the runs it trains
    shown = ("loss",)             # figures the progress bar shows

    model: nn.Module              # the weights a checkpoint holds (state_dict)

    # -- what a step is ------------------------------------------------------------------------
    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        raise NotImplementedError

    def steps_per_epoch(self) -> int:
        raise NotImplementedError

    def epoch_batches(self, order: torch.Generator, shuffle: torch.Generator, start: int) -> Iterable:
        """The epoch's batches from batch `start` on. `order` is at the epoch's start state (also when
        a run resumes mid-epoch): draw the epoch's permutation from it; `shuffle` is the live generator
        for draws that vary batch by batch (e.g. dynamic binarization), checkpointed with the run."""
        raise NotImplementedError

    def training_step(self, batch, step: int, index: int) -> Step:
        raise NotImplementedError

    def batch_size(self, batch) -> int:
        """Examples in a batch (the weight of its figures in the epoch's means)."""
        return len(batch) if batch is not None else 1

    def shard(self, batch, rank: int, world_size: int):
        """Rank `rank`'s share of a global batch under torchrun (rdvae.engine.distributed): a tensor is
        split along its first dimension into world_size near-equal pieces (torch.tensor_split); a tuple,
        list or dict of tensors piecewise; None (a plan that draws its own data) as it is."""
        if batch is None:
            return None
        if isinstance(batch, Tensor):
            return torch.tensor_split(batch, world_size)[rank]
        if isinstance(batch, (tuple, list)):
            return type(batch)(self.shard(b, rank, world_size) for b in batch)
        if isinstance(batch, dict):
            return {k: self.shard(v, rank, world_size) for k, v in batch.items()}
        raise TypeError(f"{type(self).__name__}.shard cannot split a batch of type {type(batch).__name__}; "
                        "override shard(batch, rank, world_size) to train it under torchrun")

    def lr_factor(self, step: int) -> float:
        """This step's multiple of each parameter group's base learning rate."""
        return 1.0

    def shuffle_state(self, seed: int) -> Tensor:
        """The starting state of the loop's shuffle generator."""
        return torch.Generator().manual_seed(seed + 1).get_state()

    # -- around the steps ----------------------------------------------------------------------
    def train(self) -> None:
        self.model.train()

    def validate(self, loop, train_means: dict[str, float]) -> dict:
        """After an epoch: the record metrics.jsonl gets (beyond epoch, step and the train_ means)."""
        return {}

    def summary(self, loop) -> dict:
        """At the end: summary.json's figures (the loop adds status "done" and epochs_trained where the
        plan does not say otherwise)."""
        return {}

    def describe(self) -> str:
        """The progress bar's label."""
        return type(self).__name__

    def state_dict(self) -> dict:
        """The plan's own state (JSON), checkpointed with the run."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def parameters_of(optimizer: torch.optim.Optimizer) -> Iterator[Tensor]:
    for group in optimizer.param_groups:
        yield from group["params"]
