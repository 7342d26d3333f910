"""The one training loop: `fit(plan, run, options, callbacks)`.

It owns what every plan shares: the epochs and their batches (in an order that a resumed run replays),
the backward passes and updates (the only `.backward(` of rdvae), the update guard, precision, the
learning-rate factor, progress, atomic checkpoints (weights, every optimizer, RNG states, counters, the
plan's and the callbacks' state) every epoch and every few minutes, exact resume, and summary.json.
What a step is belongs to the plan (rdvae.engine.plan); what happens around it to callbacks
(rdvae.engine.callbacks).

The update guard: an update is skipped when its loss or gradient norm is not finite or the norm
exceeds skip_grad_norm; parameters and optimizer state stay as they were. The decision is a tensor on
the device and nothing waits for it: fused Adam takes it as `found_inf` (the flag torch's GradScaler
uses), whose kernel then leaves parameters, moments and step count untouched. Skips are counted, and
the divergence rules applied (callbacks.SkipLimits), when the counters are next read (every few
steps, at logging points and before checkpoints). An optimizer without that flag (and the first
update, which creates Adam's state) reads the decision on the host, once per update. With several
optimizers, a later update of a step is taken only when the earlier ones were.

Under torchrun the loop is data-parallel (rdvae.engine.distributed): each rank trains on its share of
every global batch, gradients and figures are averaged over the ranks after each backward pass, and
rank 0 alone validates, checkpoints and writes the run folder; the callbacks run on rank 0 (those
marked `every_rank`, such as the divergence rules, on every rank) and their state reaches the others.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..device import autocast, resolve_device
from ..rundir import TRAINER_STATE, RunDir, load_tensors, save_tensors
from . import distributed
from .callbacks import HOOKS, Callback, SkipLimits, TrainingDiverged, overrides
from .checkpoint import load_checkpoint, save_checkpoint
from .plan import Plan, Step, parameters_of

READ_COUNTERS_EVERY = 10        # steps between reads of the device's skip flags and figure sums
MAX_PENDING_SKIPS = 64          # skip flags kept before they are counted anyway
SHOW_EVERY = 10                 # steps between updates of the progress bar's figures


@dataclass
class FitOptions:
    """How the loop runs (a plan's config maps its fields onto these)."""

    epochs: int = 1
    seed: int = 0
    device: str | torch.device = "cpu"
    precision: str = "fp32"
    skip_grad_norm: float = math.inf     # skip updates whose gradient norm exceeds this
    normalized_gradients: bool = False   # scale each parameter's gradient to unit norm (Yu et al. 2017)
    checkpoint_minutes: float = 10.0     # also checkpoint mid-epoch this often (0: every step)
    progress: bool = True


def normalize_gradients(params, eps: float = 1e-8) -> None:
    """Normalized gradients (Yu et al. 2017): each parameter tensor's gradient scaled to unit norm."""
    for p in params:
        if p.grad is not None:
            p.grad.div_(p.grad.norm() + eps)


def gradient_norm(params) -> torch.Tensor:
    """The global L2 norm of the gradients, as clip_grad_norm_ computes it (without its pass that
    rescales every gradient)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    one_group = len({(g.device, g.dtype) for g in grads}) == 1
    norms = torch._foreach_norm(grads) if one_group else [g.norm() for g in grads]
    return torch.linalg.vector_norm(torch.stack([n.to(grads[0].device) for n in norms]))


class Loop:
    """One run of a plan: its optimizers, counters, generators and callbacks. `fit` trains to the end."""

    def __init__(self, plan: Plan, run: RunDir | None, options: FitOptions,
                 callbacks: list[Callback] | tuple = (), on_step=None):
        self.plan, self.run, self.options, self.on_step = plan, run, options, on_step
        self.device = resolve_device(options.device) if isinstance(options.device, str) else options.device
        self.skip_grad_norm = options.skip_grad_norm
        self.callbacks = list(callbacks)
        if not any(isinstance(c, SkipLimits) for c in self.callbacks):
            self.callbacks.append(SkipLimits(math.inf))   # skips are counted; nothing stops the run
        names = [c.name for c in self.callbacks]
        if len(set(names)) != len(names):
            raise ValueError(f"callbacks need distinct names (their keys in the checkpoint), got {names}")
        self.group = distributed.current()
        self.main = self.group is None or self.group.main
        # on ranks other than 0 only the callbacks that must see every rank's steps (the divergence
        # rules) run, and every callback's `stops` (its state comes from rank 0 after each epoch)
        self.hooks = {hook: [c for c in self.callbacks if overrides(c, hook)
                             and (self.main or hook == "stops" or getattr(c, "every_rank", False))]
                      for hook in HOOKS}
        self.optimizers = list(plan.configure_optimizers())
        self.params = [[p for p in parameters_of(o) if p.requires_grad] for o in self.optimizers]
        # each parameter group's base learning rate, which plan.lr_factor multiplies every step
        self.base_lrs = [[group["lr"] for group in o.param_groups] for o in self.optimizers]
        self.shuffle = torch.Generator()
        self.shuffle.set_state(plan.shuffle_state(options.seed))
        self.epoch_start_shuffle = self.shuffle.get_state()
        self.steps_per_epoch = plan.steps_per_epoch()
        self.total_steps = self.steps_per_epoch * options.epochs
        # everything a checkpoint needs besides weights, optimizers, RNG states, plan and callbacks
        self.counters = {"epoch": 0, "step": 0, "batch": 0, "skipped": 0, "consecutive_skips": 0,
                         "train_seconds": 0.0, "epoch_sums": {}, "epoch_seen": 0,
                         "world_size": self.group.world_size if self.group else 1}
        self.pending_skips: list[tuple[int, torch.Tensor]] = []   # (step, update taken) not yet counted
        self.stop_reason: str | None = None   # set by a callback to end training after this epoch
        self.keep_weights = True              # False: this epoch's checkpoint keeps the previous weights
        self.figure_names: list[str] | None = None
        self.checkpoint_votes = torch.zeros((), dtype=torch.bool)   # under torchrun: rank 0 asks for one
        self.train_means: dict[str, float] = {}
        self.sums: torch.Tensor | None = None
        self.started = time.monotonic()

    @property
    def where(self) -> str:
        return str(self.run.path) if self.run is not None else "memory"

    # -- checkpoints ---------------------------------------------------------------------------
    def checkpoint(self) -> None:
        """Write the checkpoint (rank 0; under torchrun every rank calls it, for its generator state)."""
        if self.run is None:
            return
        rng = {"torch": torch.get_rng_state(), "shuffle": self.shuffle.get_state(),
               "shuffle_epoch_start": self.epoch_start_shuffle}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        if self.group is not None:   # each rank's own stream of draws, for an exact resume
            with distributed.collective("a checkpoint", self.where):
                for key in [k for k in ("torch", "cuda") if k in rng]:
                    rng[f"{key}_ranks"] = distributed.gather_states(rng[key])
                    rng[key] = rng[f"{key}_ranks"][0].clone()
            if not self.main:
                return
        state = {"plan": self.plan.state_dict(), "stop_reason": self.stop_reason,
                 "callbacks": {c.name: c.state_dict() for c in self.callbacks}}
        if self.keep_weights:
            save_checkpoint(self.run, self.plan.model, self.optimizers, self.counters, rng, state)
        else:   # the counters and states record the stop; weights and optimizers stay the previous epoch's
            tensors, meta = load_tensors(self.run / TRAINER_STATE)
            meta.update(counters=self.counters, **state)
            save_tensors(self.run / TRAINER_STATE, tensors, meta)

    def restore(self) -> None:
        counters, rng, meta = load_checkpoint(self.run, self.plan.model, self.optimizers, self.device)
        saved_world = counters.get("world_size") or 1
        self.counters.update(counters)
        if isinstance(self.counters["epoch_sums"], list):   # a checkpoint of rdvae <= 0.1's VAE trainer
            self.counters["epoch_sums"] = {**dict(zip(("loss", "rate", "distortion"),
                                                      self.counters["epoch_sums"], strict=True)),
                                           **self.counters.pop("epoch_terms", {})}
        self.restore_draws(rng, saved_world)
        self.shuffle.set_state(rng["shuffle"])
        self.epoch_start_shuffle = rng.get("shuffle_epoch_start", rng["shuffle"])
        self.plan.load_state_dict(meta.get("plan") or {})
        states = meta.get("callbacks")
        for callback in self.callbacks:
            if states is not None:
                callback.load_state_dict(states.get(callback.name) or {})
            elif hasattr(callback, "load_legacy_counters"):   # a checkpoint from before callbacks had state
                callback.load_legacy_counters(counters)
        self.stop_reason = meta.get("stop_reason")
        epoch = self.counters["epoch"]
        if self.main:
            self.run.keep_metrics(m for m in self.run.read_metrics() if m["epoch"] <= epoch)

    def restore_draws(self, rng: dict[str, torch.Tensor], saved: int) -> None:
        """This rank's generator states from a checkpoint: its own where the checkpoint was written by
        as many ranks, else rank 0's (and a fresh stream for the other ranks, said once)."""
        world = self.group.world_size if self.group else 1
        rank = self.group.rank if self.group else 0
        for key in ("torch", "cuda"):
            if key not in rng or (key == "cuda" and self.device.type != "cuda"):
                continue
            ranks = rng.get(f"{key}_ranks")
            if ranks is not None and len(ranks) == world:
                state = ranks[rank].clone()   # a row of the stack: set_rng_state needs its own storage
            elif rank == 0:
                state = rng[key]
            else:
                seed = distributed.rank_seed(self.options.seed + self.counters["step"], rank)
                (torch.manual_seed if key == "torch" else torch.cuda.manual_seed)(seed)
                continue
            if key == "torch":
                torch.set_rng_state(state)
            else:
                torch.cuda.set_rng_state(state, self.device)
        if saved != world:
            distributed.note(
                f"{self.where} was checkpointed by {saved} process(es) and continues under {world}: the "
                "batches go on in the same order (each step's global batch is split over the ranks); the "
                "Monte Carlo draws of the ranks beyond 0 start fresh streams, so the result equals that of "
                "an uninterrupted run up to Monte Carlo error, not bit for bit")
        self.counters["world_size"] = world

    # -- one update ----------------------------------------------------------------------------
    def share(self, batch):
        """This rank's share of a global batch and its weight (its fraction of the batch's examples)."""
        group, plan = self.group, self.plan
        shares = [plan.shard(batch, rank, group.world_size) for rank in range(group.world_size)]
        sizes = [plan.batch_size(piece) for piece in shares]
        mine = sizes[group.rank]
        if mine == 0:   # fewer examples than ranks: this rank takes a step that counts for nothing
            return next(p for p, n in zip(shares, sizes, strict=True) if n), 0.0
        return shares[group.rank], mine / sum(sizes)

    def step(self, batch, checkpoint_vote: bool = False) -> torch.Tensor:
        """One guarded step (an update per optimizer): the step's figures on the device, in the order
        of self.figure_names, then 1 (taken) or 0; all 0 where an update was skipped. Under torchrun
        `batch` is the global batch, of which this rank trains on its share."""
        step, options = self.counters["step"], self.options
        factor = self.plan.lr_factor(step)
        weight = 1.0
        if self.group is not None:
            batch, weight = self.share(batch)
        taken = None
        figures: dict[str, torch.Tensor] = {}
        for index, (optimizer, params) in enumerate(zip(self.optimizers, self.params, strict=True)):
            for group, base in zip(optimizer.param_groups, self.base_lrs[index], strict=True):
                group["lr"] = base * factor
            with autocast(options.precision, self.device):
                out: Step = self.plan.training_step(batch, step, index)
            if not isinstance(out, Step):
                raise TypeError(f"{type(self.plan).__name__}.training_step must return an rdvae.engine.Step"
                                f"(loss, figures), got {type(out).__name__}")
            loss = out.loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            finite = torch.isfinite(loss)
            if self.group is not None:   # every rank: the batch's mean gradient and figures
                with distributed.collective(f"step {step}", self.where):
                    shared, bad, votes = distributed.reduce_step(params, loss, out.figures, weight,
                                                                 checkpoint_vote and index == 0)
                out = Step(loss, shared)
                finite = ~bad
                if index == 0:
                    self.checkpoint_votes = votes
            norm = gradient_norm(params)
            ok = finite & torch.isfinite(norm) & (norm <= self.skip_grad_norm)
            taken = ok if taken is None else taken & ok
            on_device = getattr(optimizer, "_step_supports_amp_scaling", False) and bool(optimizer.state)
            if on_device or taken:   # off the fused path, `taken` is read on the host here
                if options.normalized_gradients:
                    normalize_gradients(params)
                if on_device:
                    optimizer.found_inf = (~taken).float()
                    try:
                        optimizer.step()
                    finally:
                        del optimizer.found_inf
                else:
                    optimizer.step()
            figures.update(out.figures)
        self.pending_skips.append((step, taken))
        if len(self.pending_skips) >= MAX_PENDING_SKIPS:
            self.count_skips()
        if self.figure_names is None:
            self.figure_names = list(figures)
        values = [figures[name].detach().float().mean() for name in self.figure_names]
        stacked = torch.stack([*values, taken.to(values[0].dtype if values else torch.float32)])
        return torch.where(taken, stacked, 0.0)

    def count_skips(self) -> None:
        """Add the updates skipped since the last call to the counters (one read of the device)."""
        if not self.pending_skips:
            return
        steps = [step for step, _ in self.pending_skips]
        taken = torch.stack([ok for _, ok in self.pending_skips]).tolist()
        self.pending_skips.clear()
        counters = self.counters
        for step, ok in zip(steps, taken, strict=True):
            if ok:
                counters["consecutive_skips"] = 0
                continue
            counters["skipped"] += 1
            counters["consecutive_skips"] += 1
            for callback in self.hooks["on_skip"]:   # the divergence rules see each skip
                callback.on_skip(self, step)

    # -- epochs --------------------------------------------------------------------------------
    def epoch_order(self) -> torch.Generator:
        """The generator this epoch's order is drawn from: the live one at the epoch's start, or a
        replay of its start state when the run resumes mid-epoch."""
        if self.counters["batch"] == 0:
            self.epoch_start_shuffle = self.shuffle.get_state()
            return self.shuffle
        replay = torch.Generator()
        replay.set_state(self.epoch_start_shuffle)
        return replay

    def read_counters(self) -> None:
        self.count_skips()
        if self.sums is not None and self.figure_names is not None:
            *values, seen = self.sums.tolist()
            self.counters["epoch_sums"] = dict(zip(self.figure_names, values, strict=True))
            self.counters["epoch_seen"] = int(seen)

    def epoch_means(self) -> dict[str, float]:
        seen = max(self.counters["epoch_seen"], 1)
        return {name: value / seen for name, value in self.counters["epoch_sums"].items()}

    def run_epoch(self, bar) -> None:
        counters, plan = self.counters, self.plan
        plan.train()
        # the epoch's example-weighted sums of the figures and the examples updated on, kept on the
        # device in float64 where it has it, read into the counters only where needed
        device = self.device if self.device.type in ("cpu", "cuda") else torch.device("cpu")
        self.sums = None
        last_checkpoint = time.monotonic()
        batches = plan.epoch_batches(self.epoch_order(), self.shuffle, counters["batch"])
        for b, batch in zip(range(counters["batch"], self.steps_per_epoch), batches, strict=True):
            # under torchrun rank 0's clock decides, every few steps, and all ranks checkpoint together
            vote = (b + 1 < self.steps_per_epoch and self.run is not None and self.main
                    and time.monotonic() - last_checkpoint > 60 * self.options.checkpoint_minutes)
            if self.group is not None:
                vote = vote and (counters["step"] + 1) % READ_COUNTERS_EVERY == 0
            figures = self.step(batch, vote)
            if self.sums is None:   # the first step names the figures; a resumed epoch continues its sums
                saved = counters["epoch_sums"]
                self.sums = torch.tensor([*(saved.get(n, 0.0) for n in self.figure_names),
                                          counters["epoch_seen"]], dtype=torch.float64, device=device)
            self.sums += figures.to(device).double() * plan.batch_size(batch)
            counters["step"] += 1
            counters["batch"] = b + 1
            bar.update(1)
            checkpoint_due = vote
            if self.group is not None:
                checkpoint_due = (counters["step"] % READ_COUNTERS_EVERY == 0
                                  and bool(self.checkpoint_votes))
            if counters["step"] % READ_COUNTERS_EVERY == 0 or self.on_step is not None or checkpoint_due:
                self.read_counters()
            for callback in self.hooks["on_step"]:
                callback.on_step(self, figures)
            if counters["step"] % SHOW_EVERY == 0 and counters["epoch_seen"]:
                means = self.epoch_means()
                bar.set_postfix({name: f"{means[name]:.3f}" for name in plan.shown if name in means}
                                | {"skipped": counters["skipped"]}, refresh=False)
            if self.on_step is not None and self.main:
                self.on_step(dict(counters))
            if checkpoint_due:
                counters["train_seconds"] = time.monotonic() - self.started
                self.checkpoint()
                last_checkpoint = time.monotonic()
        self.read_counters()
        self.end_epoch()

    def end_epoch(self) -> None:
        counters = self.counters
        self.train_means = self.epoch_means()
        counters.update(epoch=counters["epoch"] + 1, batch=0, epoch_sums={}, epoch_seen=0,
                        train_seconds=time.monotonic() - self.started)
        if self.group is not None:
            with distributed.collective(f"the end of epoch {counters['epoch']}", self.where):
                distributed.broadcast_buffers(self.plan.model)
                shared = distributed.from_main(self.validate, errors=(TrainingDiverged,))
            if not self.main:
                self.adopt(shared)
        else:
            self.validate()
        self.checkpoint()
        self.keep_weights = True

    def validate(self) -> dict:
        """The epoch's validation and its callbacks (rank 0's, under torchrun); what the other ranks
        take of it (adopt)."""
        counters = self.counters
        record = {"epoch": counters["epoch"], "step": counters["step"],
                  **self.plan.validate(self, self.train_means)}
        for callback in self.hooks["on_validation"]:
            callback.on_validation(self, record)
        for callback in self.hooks["on_epoch_end"]:
            callback.on_epoch_end(self, record)
        return {"stop_reason": self.stop_reason, "plan": self.plan.state_dict(),
                "callbacks": {c.name: c.state_dict() for c in self.callbacks}}

    def adopt(self, shared: dict) -> None:
        """Rank 0's outcome of an epoch on another rank: the stop reason, the plan's and callbacks' state."""
        self.stop_reason = shared["stop_reason"]
        self.plan.load_state_dict(shared["plan"] or {})
        for callback in self.callbacks:
            if callback.name in shared["callbacks"]:
                callback.load_state_dict(shared["callbacks"][callback.name] or {})

    def stopped(self) -> bool:
        """Whether a callback has ended training before the epoch cap."""
        return self.stop_reason is not None or any(c.stops(self) for c in self.hooks["stops"])

    def fit(self, resume: bool = False) -> dict:
        """Train to the end (resume: from the run's checkpoint when it has one) and return the summary
        (written to summary.json when there is a run folder)."""
        if resume and self.run is not None and (self.run / TRAINER_STATE).exists():
            self.restore()
        counters = self.counters
        if self.group is not None and self.group.rank > 0 and counters["step"] == 0:
            torch.manual_seed(distributed.rank_seed(self.options.seed, self.group.rank))
        self.started = time.monotonic() - counters["train_seconds"]
        bar = tqdm(total=self.total_steps, initial=counters["step"],
                   disable=not (self.options.progress and self.main),
                   unit="step", dynamic_ncols=True, desc=self.plan.describe())
        try:
            for callback in self.hooks["on_fit_start"]:
                callback.on_fit_start(self)
            with bar:
                while counters["epoch"] < self.options.epochs and not self.stopped():
                    self.run_epoch(bar)
            for callback in self.hooks["on_train_end"]:
                callback.on_train_end(self)
            with distributed.collective("the final evaluation", self.where):
                summary = distributed.from_main(self.summarize, errors=(TrainingDiverged,))
        except TrainingDiverged as err:   # recorded, never "done"; the caller sees the error
            diverged = None
            if self.run is not None and self.main:
                diverged = self.run.update_summary(status="diverged", error=str(err), step=counters["step"],
                                                   skipped_updates=counters["skipped"])
            for callback in self.hooks["on_exception"]:
                callback.on_exception(self, err, diverged)
            raise
        except BaseException as err:   # interrupted: a resume continues from the last checkpoint
            for callback in self.hooks["on_exception"]:
                callback.on_exception(self, err, None)
            raise
        if self.run is not None and self.main:
            summary = self.run.update_summary(**summary)
        for callback in self.hooks["on_summary"]:
            callback.on_summary(self, summary)
        return summary

    def summarize(self) -> dict:
        """summary.json's figures: the plan's summary and the callbacks' additions (rank 0's)."""
        summary = {"status": "done", "epochs_trained": self.counters["epoch"], **self.plan.summary(self)}
        if self.group is not None:
            summary["world_size"] = self.group.world_size
        for callback in self.hooks["on_fit_end"]:
            callback.on_fit_end(self, summary)
        return summary


def fit(plan: Plan, run: str | Path | RunDir | None = None, options: FitOptions | None = None,
        callbacks: list[Callback] | tuple = (), resume: bool = False, on_step=None) -> dict:
    """Train `plan` (rdvae.engine.plan.Plan) with the one loop; return the summary.

    run: the run folder that checkpoints and summary.json go to (None: nothing written, no resume).
    resume: continue from its checkpoint; the result equals that of an uninterrupted run (on a CPU,
    bit for bit). Callbacks (rdvae.engine.callbacks) run around steps and epochs; `on_step(counters)`
    is called after every step with the counters read from the device (a sweep's progress)."""
    if run is not None and not isinstance(run, RunDir):
        run = RunDir(run)
    if run is not None:
        run.path.mkdir(parents=True, exist_ok=True)
    return Loop(plan, run, options or FitOptions(), callbacks, on_step).fit(resume)


__all__ = ["FitOptions", "Loop", "TrainingDiverged", "fit", "gradient_norm", "normalize_gradients"]
