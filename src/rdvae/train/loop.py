"""The training loop: in-memory batches, Adam, schedules, evaluation every epoch,
atomic checkpoints, exact resume, and a guard against non-finite or exploding updates."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..components.gaussian_decoders import GaussianDecoder, effective_beta
from ..data.streaming import TrainSplit
from ..device import autocast, resolve_device, seeded
from ..errors import EvaluationError
from ..evaluate import evaluate_model
from ..presets import build_model
from ..protocols import CONTRACT_EXAMPLES, check_model_contract
from ..rundir import LOCK, METRICS, TRAINER_STATE, WEIGHTS, RunDir, foreign_files
from .checkpoint import load_checkpoint, repair_weights, save_checkpoint
from .config import (
    AUTO,
    RECORDED_FIELDS,
    TRACKING_FIELDS,
    ConfigError,
    TrainConfig,
    read_run_config,
    run_record,
)
from .data import check_likelihood, dataset_for, resolve_auto_binarize, verify_recorded_data
from .schedules import lr_factor, plateau_factor, plateau_improvement

# the plateau criterion's state (TrainConfig.plateau_epochs): the step the 'plateau' schedule's decay
# began at, why training stops early, whether the plateau was reached, the improvement it measured
PLATEAU_COUNTERS = {"decay_from": None, "stop_reason": None, "converged": None, "plateau_gain": None}
STREAMED_INIT_EXAMPLES = 4096   # examples a streamed split lends to data-dependent initialisation
READ_COUNTERS_EVERY = 10        # steps between reads of the device's skip flags and loss sums
MAX_PENDING_SKIPS = 64          # skip flags Trainer.step keeps before counting them itself


class TrainingDiverged(RuntimeError):
    """Updates kept being skipped (non-finite loss or exploding gradient)."""


def build_for_config(config: TrainConfig, event_shape) -> torch.nn.Module:
    """The model a config describes (deterministic given the current torch seed).

    Its size is taken first from a build on the meta device (no memory; the RNG state is restored
    after it, so the real build draws what it always drew): a model whose weights, gradients and
    Adam's two moments (16 bytes a float32 parameter) exceed the machine's memory is a ConfigError
    before anything is allocated. A model that cannot be built on meta is built without the check."""
    from ..data.limits import format_bytes, memory_budget

    options = dict(config.model)
    if not config.analytic_rate:   # the model class's option (validated: the family's model takes it)
        options["analytic_rate"] = False
    budget = memory_budget()
    if budget is not None:
        try:
            with torch.random.fork_rng(devices=[]), torch.device("meta"):
                sized = build_model(config.family, event_shape, config.latent_dim, **options)
            params = sum(p.numel() for p in sized.parameters())
            nbytes = (4 * sum(p.numel() * p.element_size() for p in sized.parameters())
                      + sum(b.numel() * b.element_size() for b in sized.buffers()))
        except Exception:   # e.g. an initialisation that reads tensor values: no estimate (a config error
            nbytes = 0      # is raised again, with nothing allocated, by the build below)
        if nbytes > budget:
            latent_dim = config.latent_dim or getattr(sized, "latent_dim", None)   # None: the family's
            raise ConfigError(
                f"the model of family {config.family!r} with latent_dim={latent_dim} and model "
                f"options {config.model} has {params} parameters: training it needs {nbytes} bytes "
                f"({format_bytes(nbytes)}) for weights, gradients and Adam's moments, more than this "
                f"machine's memory ({format_bytes(budget)}); lower latent_dim or the model options' sizes "
                "(e.g. --set model.hidden=[...])")
    return build_model(config.family, event_shape, config.latent_dim, **options)


def _tracking(run: RunDir, config: TrainConfig):
    """metrics.jsonl and the config's trackers (rdvae.tracking, imported only when some are named)."""
    if not config.log:
        return _JsonlOnly(run)
    from ..tracking import Tracking

    return Tracking(run, config)


class _JsonlOnly:
    """Tracking without trackers: metrics.jsonl alone, as it has always been written."""
    active = every_step = False

    def __init__(self, run: RunDir):
        self.run = run

    def start(self, config: dict, step: int) -> None:
        pass

    def log_epoch(self, step: int, record: dict) -> None:
        self.run.append_metrics(record)

    def figures_due(self, epoch: int) -> bool:
        return False

    def finish(self, summary: dict) -> None:
        pass

    def close(self, timeout: float = 0) -> None:
        pass


def make_adam(params, lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam with the fused kernel where torch has one for the device (CPU and CUDA in
    torch >= 2.4); same update rule, fewer passes over memory."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr)


def final_evaluation(model: torch.nn.Module, x: torch.Tensor, config: TrainConfig,
                     progress: bool = False) -> dict:
    """The evaluation a finished run's summary holds: `x` (its final split) with the config's
    IW samples, batch size, seed and precision."""
    return evaluate_model(model, x, iw_samples=config.iw_samples, batch_size=config.eval_batch_size,
                          seed=config.seed, precision=config.precision, progress=progress)


def _normalize_gradients(params: list[torch.nn.Parameter], eps: float = 1e-8) -> None:
    """Normalized gradients (Yu et al. 2017): each parameter tensor's gradient scaled to unit norm."""
    for p in params:
        if p.grad is not None:
            p.grad.div_(p.grad.norm() + eps)


def _gradient_norm(params: list[torch.nn.Parameter]) -> torch.Tensor:
    """The global L2 norm of the gradients, as clip_grad_norm_ computes it (without its pass that
    rescales every gradient)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    one_group = len({(g.device, g.dtype) for g in grads}) == 1
    norms = torch._foreach_norm(grads) if one_group else [g.norm() for g in grads]
    return torch.linalg.vector_norm(torch.stack([n.to(grads[0].device) for n in norms]))


def _split(ds, name: str) -> torch.Tensor:
    if name == "train" and ds.streamed:
        raise ConfigError(f"{ds.name}'s train split is streamed, so it cannot be evaluated as a whole; "
                          "evaluate valid or test (eval_split, final_split)")
    x = ds.split(name)
    if len(x) == 0 and name == "valid":
        return ds.split("test")
    return x


# settings that a resumed run may change: more epochs (and the schedule that goes with them),
# as long as every step already taken keeps its learning rate
EXTENDABLE = ("epochs", "lr_schedule")


def _check_resume(run: RunDir, config: TrainConfig | None,
                  data_given: bool = False) -> tuple[TrainConfig, TrainConfig | None]:
    """The config to continue `run` with, and the saved one when the given config extends it
    (more epochs); any other difference is refused, except where the run reports to (TRACKING_FIELDS),
    which is taken from the given config."""
    saved, _ = read_run_config(run, data_given)
    if config is None:
        return saved, None
    diff = {k: (v, getattr(config, k)) for k, v in saved.to_dict().items()
            if getattr(config, k) != v and k not in RECORDED_FIELDS + TRACKING_FIELDS
            and not (k == "binarize" and config.binarize == AUTO)}   # auto: resolved when first trained
    if not diff:
        for name in TRACKING_FIELDS:
            setattr(saved, name, getattr(config, name))
        return saved, None
    if set(diff) <= set(EXTENDABLE) and config.epochs > saved.epochs:
        return config, saved
    details = ", ".join(f"{k}: saved {a!r} vs given {b!r}" for k, (a, b) in diff.items())
    raise ConfigError(
        f"cannot resume {run.path} with a different config ({details}); resume without changing "
        "settings (or with more --epochs, to train it longer), or train into a new --out")


def train(config: TrainConfig | None, out: str | Path, resume: bool = False, progress: bool = True,
          objective=None, on_step: Callable[[dict], None] | None = None, dataset=None, model=None) -> dict:
    """Train the model a config describes into run directory `out`; return summary.json's dict.

    Objects may replace what the config names: `dataset` (an rdvae.data.Dataset whose name is the
    config's dataset), `model` (any model of the rdvae.protocols contract, e.g. VAE(MyEncoder(),
    MyDecoder(), StandardNormal(d)); the config's family is recorded as given, so name a family that
    builds the same model, registered in a plugin, to evaluate or resume the run from the command
    line, or pass the model again to load_run) and `objective` (an rdvae.objectives.Objective).

    resume=True continues the run in `out` from its last checkpoint (config None: the saved
    one); the result equals that of an uninterrupted run with the same seed on the CPU.
    A finished run is not retrained: its summary is returned, unless `config` gives it more
    epochs (and possibly another lr_schedule): then it is trained on to the new end, which is
    allowed only where every step already taken had the learning rate the new schedule gives
    it, so that the result is again that of an uninterrupted run of the new length.

    One process writes a run folder at a time (RunDir.lock): a second train or resume of the same
    folder is refused with a RunLocked naming the holder. A new run goes into a new or empty folder.
    """
    run = RunDir(out)
    created = not run.path.exists()
    if not run.exists:
        _refuse_foreign(run)   # before the lock file is made in it (and again under the lock)
    with run.lock("rdvae train"):
        try:
            return _train(run, config, resume, progress, objective, on_step, dataset, model)
        finally:   # under the lock, so that no other writer has taken the folder meanwhile
            if created:
                _remove_if_unused(run.path)


# what a folder may hold before a run's config.json is written (a new run goes into no other folder)
BEFORE_CONFIG = (LOCK, ".sweep.lock", "error.log")


def _refuse_foreign(run: RunDir) -> None:
    """A new run goes into a new or empty folder (or one a killed start of it left)."""
    foreign = foreign_files(run.path, BEFORE_CONFIG)
    if foreign:
        raise ConfigError(f"{run.path} already holds files that are not an rdvae run's "
                          f"({', '.join(foreign[:5])}); nothing was changed. Choose a new or empty --out")


def _remove_if_unused(folder: Path) -> None:
    """Remove a folder this process created for a run that was refused before it wrote anything."""
    try:
        if folder.is_dir() and {p.name for p in folder.iterdir()} <= {LOCK}:
            (folder / LOCK).unlink(missing_ok=True)
            folder.rmdir()
    except OSError:
        pass


def _train(run: RunDir, config: TrainConfig | None, resume: bool, progress: bool, objective, on_step,
           dataset, model) -> dict:
    shorter = None
    if resume and run.exists:
        config, shorter = _check_resume(run, config, data_given=dataset is not None)
        if shorter is None and run.read_summary().get("status") == "done":
            verify_recorded_data(config)
            if repair_weights(run):   # model.safetensors damaged or lost: the checkpoint has the same weights
                print(f"rdvae: rewrote {run / WEIGHTS} from {TRAINER_STATE}", file=sys.stderr)
            if config.log:   # trackers whose finish a kill or a failure left undone finish now
                from ..tracking.dispatch import finish_unfinished

                finish_unfinished(run, config)
            return run.read_summary()
    elif run.exists:
        raise ConfigError(
            f"{run.path} already holds a run; pass --resume to continue it or choose another --out"
        )
    elif config is None:
        raise ConfigError(f"nothing to resume in {run.path}: it has no config.json")
    else:
        _refuse_foreign(run)
    config.validated(data_given=dataset is not None)
    trainer = Trainer(config, run, dataset, objective, progress, on_step, model)
    if resume:
        run.remove_temporary()   # left by a write that was killed; this process is the run's one writer
    if resume and (run / TRAINER_STATE).exists():
        trainer.restore()
    else:
        (run / METRICS).unlink(missing_ok=True)
    if shorter is not None:
        trainer.check_extends(shorter)
        if run.read_summary():
            run.update_summary(status="extending", epochs=config.epochs)
    run.write_config(run_record(config, run.path))
    return trainer.fit()


class Trainer:
    """One run's model, optimizer, data and counters; `fit` trains it to the end."""

    def __init__(self, config: TrainConfig, run: RunDir, dataset=None, objective=None,
                 progress: bool = True, on_step: Callable[[dict], None] | None = None, model=None):
        self.config, self.run, self.progress, self.on_step = config, run, progress, on_step
        self.device = resolve_device(config.device)
        ds = dataset_for(config, dataset)
        torch.manual_seed(config.seed)
        built = model is None   # of the config's family: the contract check names its registered parts
        if model is None:
            model = build_for_config(config, ds.event_shape)
        self.model = model.to(self.device)
        ds = resolve_auto_binarize(config, self.model, ds, progress)
        self.dataset = ds
        self.train = TrainSplit(ds, self.device)
        self.eval_x, self.final_x = _split(ds, config.eval_split), _split(ds, config.final_split)
        # the model contract (rdvae.protocols) on a few training examples: a broken part is one line naming it
        check_model_contract(self.model, ds.train_transform(self.train.head(CONTRACT_EXAMPLES),
                                                            torch.Generator().manual_seed(0)),
                             ds.event_shape, family=config.family if built else None)
        if not config.allow_improper_likelihood:
            check_likelihood(self.model, ds, self.train.head(256))
        # data-dependent initialisation (e.g. VampPrior pseudo-inputs) from the split, or its head if streamed
        self.model.marginal.initialize_from_data(self.train.source if self.train.in_memory
                                                 else self.train.head(STREAMED_INIT_EXAMPLES))
        self.objective = objective or config.objective_instance()
        self.objective.prepare(self.model, self.train.source)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = make_adam(self.params, config.lr, self.device)
        self.shuffle = torch.Generator().manual_seed(config.seed + 1)
        self.epoch_start_shuffle = self.shuffle.get_state()
        self.steps_per_epoch = math.ceil(len(self.train) / config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        # everything a checkpoint needs besides weights, optimizer and RNG states
        self.counters = {"epoch": 0, "step": 0, "batch": 0, "skipped": 0, "consecutive_skips": 0,
                         "train_seconds": 0.0, "epoch_sums": [0.0, 0.0, 0.0], "epoch_seen": 0,
                         "epoch_terms": {}, **PLATEAU_COUNTERS}
        self.pending_skips: list[tuple[int, torch.Tensor]] = []   # (step, update taken) not yet counted
        self.step_terms: dict[str, torch.Tensor] = {}   # the last step's StepResult.terms (batch means)
        self.tracking = _tracking(run, config)   # metrics.jsonl, and the trackers of --log

    # -- checkpoints ---------------------------------------------------------------------------
    def checkpoint(self) -> None:
        rng = {"torch": torch.get_rng_state(), "shuffle": self.shuffle.get_state(),
               "shuffle_epoch_start": self.epoch_start_shuffle}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        save_checkpoint(self.run, self.model, self.optimizer, self.counters, rng)

    def restore(self) -> None:
        self.counters, rng = load_checkpoint(self.run, self.model, self.optimizer, self.device)
        # checkpoints from before the criterion, or from before objectives' terms were logged
        self.counters = {**PLATEAU_COUNTERS, "epoch_terms": {}, **self.counters}
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        self.epoch_start_shuffle = rng["shuffle_epoch_start"]
        self.shuffle.set_state(rng["shuffle"])
        epoch = self.counters["epoch"]
        self.run.keep_metrics(m for m in self.run.read_metrics() if m["epoch"] <= epoch)

    def check_extends(self, shorter: TrainConfig) -> None:
        """Refuse to continue a run trained under `shorter` (fewer epochs) to this config's end
        if any step already taken would have had another learning rate."""
        if "plateau" in (shorter.lr_schedule, self.config.lr_schedule):
            raise ConfigError(
                f"cannot extend {self.run.path} to {self.config.epochs} epochs: under lr_schedule "
                "'plateau' the "
                "decay depends on the validation curve, so a longer run is not this run continued; train a "
                "new run with --out")
        done = self.counters["step"]
        before = self.steps_per_epoch * shorter.epochs
        changed = next((s for s in range(done) if lr_factor(shorter.lr_schedule, s, before)
                        != lr_factor(self.config.lr_schedule, s, self.total_steps)), None)
        if changed is not None:
            raise ConfigError(
                f"cannot extend {self.run.path} from {shorter.epochs} to {self.config.epochs} epochs: "
                f"under lr_schedule {self.config.lr_schedule!r} step {changed} (of the {done} already "
                f"taken) would have had another learning rate than under the saved {shorter.lr_schedule!r} "
                f"schedule for {shorter.epochs} epochs; train a new run with --out, or extend a run whose "
                "schedule was 'constant' so far")

    # -- one update ----------------------------------------------------------------------------
    def step(self, x: torch.Tensor) -> torch.Tensor:
        """One guarded update; returns [loss, mean R, mean D, 1] on the model's device, or zeros
        where the update was skipped.

        An update is skipped when the loss or the gradient norm is not finite or the norm exceeds
        skip_grad_norm: parameters and optimizer state stay as they were. The decision is a tensor
        on the device and nothing waits for it: fused Adam takes it as `found_inf` (the flag
        torch's GradScaler uses), whose kernel then leaves parameters, moments and step count
        untouched. Skips are counted, and a run that keeps skipping is stopped, when the counters
        are next read (`count_skips`, every few steps, at logging points and before checkpoints).
        An optimizer without that flag (and the first update, which creates Adam's state) reads the
        decision on the host, once."""
        config, counters = self.config, self.counters
        for group in self.optimizer.param_groups:
            group["lr"] = config.lr * self.lr_factor()
        with autocast(config.precision, self.device):
            out = self.objective(self.model, x, counters["step"])
        loss = out.loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = _gradient_norm(self.params)
        ok = torch.isfinite(loss) & torch.isfinite(norm) & (norm <= config.skip_grad_norm)
        optimizer = self.optimizer
        on_device = getattr(optimizer, "_step_supports_amp_scaling", False) and bool(optimizer.state)
        if on_device or ok:   # off the fused path, `ok` is read on the host here
            if config.normalized_gradients:
                _normalize_gradients(self.params)
            if on_device:
                optimizer.found_inf = (~ok).float()
                try:
                    optimizer.step()
                finally:
                    del optimizer.found_inf
            else:
                optimizer.step()
        self.pending_skips.append((counters["step"], ok))
        if len(self.pending_skips) >= MAX_PENDING_SKIPS:
            self.count_skips()
        figures = torch.stack([loss.detach(), out.rate.detach().mean(), out.distortion.detach().mean(),
                               ok.to(loss.dtype)])
        self.step_terms = {name: torch.where(ok, value.detach().float().mean(), 0.0)
                           for name, value in (getattr(out, "terms", None) or {}).items()}
        return torch.where(ok, figures, 0.0)

    def lr_factor(self) -> float:
        """This step's multiple of the base learning rate."""
        config, counters = self.config, self.counters
        if config.lr_schedule == "plateau":
            return plateau_factor(counters["step"], counters["decay_from"],
                                  config.decay_epochs * self.steps_per_epoch)
        return lr_factor(config.lr_schedule, counters["step"], self.total_steps)

    def count_skips(self) -> None:
        """Add the updates skipped since the last call to the counters (one read of the device) and
        stop the run with TrainingDiverged at the update that made more than max_consecutive_skips
        in a row."""
        if not self.pending_skips:
            return
        steps = [step for step, _ in self.pending_skips]
        taken = torch.stack([ok for _, ok in self.pending_skips]).tolist()
        self.pending_skips.clear()
        config, counters = self.config, self.counters
        for step, ok in zip(steps, taken, strict=True):
            if ok:
                counters["consecutive_skips"] = 0
                continue
            counters["skipped"] += 1
            counters["consecutive_skips"] += 1
            if counters["consecutive_skips"] > config.max_consecutive_skips:
                raise TrainingDiverged(
                    f"{counters['consecutive_skips']} consecutive updates skipped at step "
                    f"{step} (non-finite loss or gradient norm above "
                    f"{config.skip_grad_norm:g}); the last good checkpoint in {self.run.path} is "
                    "kept. Lower the learning rate, enable normalized gradients, or raise "
                    "skip_grad_norm.")

    # -- epochs --------------------------------------------------------------------------------
    def epoch_order(self) -> torch.Tensor:
        """This epoch's permutation, drawn from the generator state at the epoch's start, so
        that a run resumed mid-epoch sees the same batches."""
        if self.counters["batch"] == 0:
            self.epoch_start_shuffle = self.shuffle.get_state()
            order = torch.randperm(len(self.train), generator=self.shuffle)
        else:
            replay = torch.Generator()
            replay.set_state(self.epoch_start_shuffle)
            order = torch.randperm(len(self.train), generator=replay)
        return order.to(self.device)

    def run_epoch(self, bar, started: float) -> None:
        config, counters = self.config, self.counters
        self.model.train()
        order = self.epoch_order()
        # the epoch's example-weighted sums of (loss, R, D) and its examples updated on, kept where
        # the steps' figures are (float64 where the device has it) and read into the counters at
        # the points that need them, so that no step waits for the device
        device = self.device if self.device.type in ("cpu", "cuda") else torch.device("cpu")
        sums = torch.tensor([*counters["epoch_sums"], counters["epoch_seen"]], dtype=torch.float64,
                            device=device)
        # the same sums of the objective's terms (StepResult.terms), by name
        term_sums = {name: torch.tensor(value, dtype=torch.float64, device=device)
                     for name, value in counters["epoch_terms"].items()}

        def read_counters() -> None:
            self.count_skips()
            *counters["epoch_sums"], seen = sums.tolist()
            counters["epoch_seen"] = int(seen)
            if term_sums:
                counters["epoch_terms"] = dict(zip(term_sums, torch.stack(list(term_sums.values())).tolist(),
                                                   strict=True))

        last_checkpoint = time.monotonic()
        batches = self.train.batches(order, config.batch_size, start=counters["batch"])
        for b, x in zip(range(counters["batch"], self.steps_per_epoch), batches, strict=True):
            figures = self.step(self.dataset.train_transform(x, self.shuffle))
            sums += figures.to(device).double() * len(x)
            for name, value in self.step_terms.items():
                term_sums[name] = term_sums.get(name, 0.0) + value.to(device).double() * len(x)
            counters["step"] += 1
            counters["batch"] = b + 1
            bar.update(1)
            checkpoint_due = (b + 1 < self.steps_per_epoch
                              and time.monotonic() - last_checkpoint > 60 * config.checkpoint_minutes)
            if counters["step"] % READ_COUNTERS_EVERY == 0 or self.on_step is not None or checkpoint_due:
                read_counters()
            if self.tracking.every_step and counters["step"] % config.log_every_steps == 0:
                loss, r, d, taken = figures.tolist()
                if taken:
                    self.tracking.log_step(counters["step"], {"train/loss": loss, "train/rate": r,
                                                              "train/distortion": d})
            if counters["step"] % READ_COUNTERS_EVERY == 0 and counters["epoch_seen"]:
                loss, r, d = (sums[:3] / counters["epoch_seen"]).tolist()
                bar.set_postfix(R=f"{r:.2f}", D=f"{d:.2f}", loss=f"{loss:.2f}",
                                skipped=counters["skipped"], refresh=False)
            if self.on_step is not None:
                self.on_step(dict(counters))
            if checkpoint_due:
                counters["train_seconds"] = time.monotonic() - started
                self.checkpoint()
                last_checkpoint = time.monotonic()
        read_counters()
        seen = max(counters["epoch_seen"], 1)
        self.end_epoch(sums[:3] / seen, started, {k: v / seen for k, v in counters["epoch_terms"].items()})

    def end_epoch(self, train_means: torch.Tensor, started: float, train_terms: dict | None = None) -> None:
        config, counters = self.config, self.counters
        counters.update(epoch=counters["epoch"] + 1, batch=0, epoch_sums=[0.0, 0.0, 0.0],
                        epoch_seen=0, epoch_terms={}, train_seconds=time.monotonic() - started)
        tracked = self.tracking.active   # trackers also get I_q, active units and the effective beta
        try:
            evaluation = evaluate_model(self.model, self.eval_x, batch_size=config.eval_batch_size,
                                        seed=config.seed, precision=config.precision, diagnostics=tracked)
        except EvaluationError as err:   # not checkpointed: the last good checkpoint stays
            raise TrainingDiverged(f"after epoch {counters['epoch']}: {err}; {self.kept()}") from None
        loss, rate, distortion = train_means.tolist()
        record = {
            **{f"train_{name}": value for name, value in (train_terms or {}).items()},
            "epoch": counters["epoch"], "step": counters["step"], "split": config.eval_split,
            "rate": evaluation["rate"], "distortion": evaluation["distortion"],
            "elbo": evaluation["elbo"],
            "objective": self.objective.validation_loss(evaluation["rate"], evaluation["distortion"]),
            "train_loss": loss, "train_rate": rate,
            "train_distortion": distortion, "skipped": counters["skipped"],
            "lr": self.optimizer.param_groups[0]["lr"], "train_seconds": counters["train_seconds"],
        }
        if tracked:
            record.update(self.tracked_figures(evaluation))
        self.tracking.log_epoch(counters["step"], record)
        if self.tracking.figures_due(counters["epoch"]) and len(self.dataset.event_shape) == 3:
            self.tracking.log_figures(counters["step"], self.model, self.eval_x, config.seed)
        self.watch_plateau()
        self.checkpoint()

    def tracked_figures(self, evaluation: dict) -> dict:
        """The epoch's figures that only the trackers ask for (the model is in eval mode, the draws seeded
        apart from the training's): I_q, active units and, for a Gaussian decoder, 2 beta sigma^2."""
        figures = {k: evaluation[k] for k in ("mutual_info", "active_units") if k in evaluation}
        if isinstance(self.model.decoder, GaussianDecoder) and self.config.target_rate is None:
            with seeded(self.config.seed, self.device):
                figures["effective_beta"] = effective_beta(self.model, self.eval_x, self.config.beta)
        return figures

    def watch_plateau(self) -> None:
        """After an epoch: apply the plateau criterion (TrainConfig.plateau_epochs) to the validation
        objective of the epochs after KL annealing. Under lr_schedule 'plateau' a plateau, or reaching
        decay_epochs before the cap, starts the decay; under another schedule a plateau stops training."""
        config, counters = self.config, self.counters
        if config.plateau_epochs == 0 or counters["decay_from"] is not None or counters["stop_reason"]:
            return
        values = [m["objective"] for m in self.run.read_metrics()
                  if m["step"] > config.kl_anneal_steps and "objective" in m]
        gain = plateau_improvement(values, config.plateau_epochs)
        reached = gain is not None and gain < config.plateau_nats
        counters["plateau_gain"] = gain
        if config.lr_schedule == "plateau":
            if reached or counters["epoch"] >= config.epochs - config.decay_epochs:
                counters.update(decay_from=counters["step"], converged=reached)
                if config.decay_epochs == 0:
                    counters["stop_reason"] = "plateau" if reached else "cap"
        elif reached:
            counters.update(stop_reason="plateau", converged=True)

    def stopped(self) -> bool:
        """Whether the plateau criterion has ended training before the epoch cap."""
        counters = self.counters
        if counters["stop_reason"]:
            return True
        decay_from = counters["decay_from"]
        return decay_from is not None and (
            counters["step"] >= decay_from + self.config.decay_epochs * self.steps_per_epoch)

    def fit(self) -> dict:
        config, counters = self.config, self.counters
        bar = tqdm(total=self.total_steps, initial=counters["step"], disable=not self.progress,
                   unit="step", dynamic_ncols=True,
                   desc=f"{config.family} {config.dataset} {self.objective.describe()}")
        started = time.monotonic() - counters["train_seconds"]
        self.tracking.start(config.to_dict(), counters["step"])
        try:
            with bar:
                while counters["epoch"] < config.epochs and not self.stopped():
                    self.run_epoch(bar, started)
            summary = self.finish()
        except TrainingDiverged as err:   # recorded, never "done"; the caller sees the error
            self.tracking.finish(self.run.update_summary(status="diverged", error=str(err),
                                                         step=counters["step"],
                                                         skipped_updates=counters["skipped"]))
            raise
        except BaseException:   # interrupted: the trackers' runs stay open, a resume continues them
            self.tracking.close(timeout=5.0)
            raise
        self.tracking.finish({**summary, "step": counters["step"]})
        return summary

    def kept(self) -> str:
        """Which checkpoint a diverged run keeps."""
        epoch = self.counters["epoch"] - 1
        kept = (f"epoch {epoch}'s checkpoint in {self.run.path} is kept as the last good one" if epoch > 0
                else "no checkpoint was written (the first epoch already diverged)")
        return f"{kept}; lower the learning rate, enable normalized gradients, or raise skip_grad_norm"

    def finish(self) -> dict:
        config, counters = self.config, self.counters
        fraction = counters["skipped"] / max(counters["step"], 1)
        if fraction > config.max_skipped_fraction:
            raise TrainingDiverged(
                f"{counters['skipped']} of {counters['step']} updates were skipped ({fraction:.0%}, more "
                "than "
                f"max_skipped_fraction {config.max_skipped_fraction:g}): non-finite losses or gradient norms "
                f"above {config.skip_grad_norm:g}. The checkpoint in {self.run.path} is kept; lower the "
                "learning rate, enable normalized gradients, or raise skip_grad_norm")
        try:
            final = final_evaluation(self.model, self.final_x, config, progress=self.progress)
        except EvaluationError as err:
            raise TrainingDiverged(f"at the end of training: {err}; the checkpoint in {self.run.path} is "
                                   "kept") from None
        summary = {
            **final,
            "status": "done",
            "beta": None if config.target_rate is not None else config.beta,
            "objective": config.objective_name(),
            "target_rate": config.target_rate,
            "family": config.family,
            "dataset": config.dataset,
            "split": config.final_split,
            "epochs": config.epochs,
            "epochs_trained": counters["epoch"],
            "seed": config.seed,
            "latent_dim": self.model.latent_dim,
            "train_seconds": self.counters["train_seconds"],
            "skipped_updates": self.counters["skipped"],
            "params": self.model.num_parameters(),
        }
        if config.plateau_epochs:
            summary.update(converged=bool(counters["converged"]), plateau_gain=counters["plateau_gain"],
                           stop_reason="plateau" if counters["converged"] else "cap")
        if isinstance(self.model.decoder, GaussianDecoder) and summary["beta"] is not None:
            summary["effective_beta"] = effective_beta(self.model, self.final_x, config.beta)  # 2 beta s^2
        if config.log:   # a kill before the trackers' finish is done is then repaired by --resume
            self.tracking.finish_pending(counters["step"])
        return self.run.update_summary(**summary)
