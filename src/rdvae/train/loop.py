"""Training a VAE into a run folder: `train(config, out)`, on the one loop (rdvae.engine.fit) with the
VAE plan (train.plan) and its callbacks (train.callbacks): plateau rule, trackers, effective beta,
divergence rules. This module checks what a run folder may hold and what a resume may change."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..engine import Callback, FitOptions, Loop, SkipLimits, TrainingDiverged, distributed
from ..engine.checkpoint import repair_weights
from ..presets import build_model
from ..rundir import LOCK, METRICS, TRAINER_STATE, WEIGHTS, RunDir, foreign_files
from .callbacks import EffectiveBeta, Plateau, Trackers
from .config import (
    AUTO,
    RECORDED_FIELDS,
    TRACKING_FIELDS,
    ConfigError,
    TrainConfig,
    read_run_config,
    run_record,
)
from .data import verify_recorded_data
from .plan import VAEPlan, final_evaluation
from .schedules import lr_factor

__all__ = ["TrainingDiverged", "build_for_config", "final_evaluation", "train", "vae_loop"]


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
          objective=None, on_step: Callable[[dict], None] | None = None, dataset=None, model=None,
          callbacks: Sequence[Callback] = ()) -> dict:
    """Train the model a config describes into run directory `out`; return summary.json's dict.

    Objects may replace what the config names: `dataset` (an rdvae.data.Dataset whose name is the
    config's dataset), `model` (any model of the rdvae.protocols contract, e.g. VAE(MyEncoder(),
    MyDecoder(), StandardNormal(d)); the config's family is recorded as given, so name a family that
    builds the same model, registered in a plugin, to evaluate or resume the run from the command
    line, or pass the model again to load_run) and `objective` (an rdvae.objectives.Objective).
    `callbacks` (rdvae.engine.Callback) run after the run's own (their state is checkpointed with it).

    resume=True continues the run in `out` from its last checkpoint (config None: the saved
    one); the result equals that of an uninterrupted run with the same seed on the CPU.
    A finished run is not retrained: its summary is returned, unless `config` gives it more
    epochs (and possibly another lr_schedule): then it is trained on to the new end, which is
    allowed only where every step already taken had the learning rate the new schedule gives
    it, so that the result is again that of an uninterrupted run of the new length.

    One process writes a run folder at a time (RunDir.lock): a second train or resume of the same
    folder is refused with a RunLocked naming the holder. A new run goes into a new or empty folder.

    Under torchrun (rdvae.engine.distributed.init joined the group first) every rank calls train with
    the same arguments; config.batch_size is the global batch, split over the ranks; rank 0 alone
    locks and writes the folder. A process that torchrun restarted (--max-restarts) resumes by itself.
    """
    run = RunDir(out)
    if distributed.restarted() and run.exists:
        resume = True
    group = distributed.current()
    if group is not None and not group.main:   # reads the folder; rank 0 holds the lock and writes
        return _train(run, config, resume, progress, objective, on_step, dataset, model, callbacks)
    created = not run.path.exists()
    if not run.exists:
        _refuse_foreign(run)   # before the lock file is made in it (and again under the lock)
    with run.lock("rdvae train"):
        try:
            return _train(run, config, resume, progress, objective, on_step, dataset, model, callbacks)
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
           dataset, model, callbacks: Sequence[Callback] = ()) -> dict:
    """Every rank checks the folder and builds the loop; only if all succeeded does rank 0 write."""
    with distributed.together("to set up the run"):
        loop, config, shorter = _set_up(run, config, resume, progress, objective, on_step, dataset, model,
                                        callbacks)
    if loop is None:   # a finished run: its summary
        return run.read_summary()
    if distributed.is_main():
        if resume:
            run.remove_temporary()   # left by a write that was killed; this process is the run's one writer
        if not (resume and (run / TRAINER_STATE).exists()):
            (run / METRICS).unlink(missing_ok=True)
        if shorter is not None and run.read_summary():
            run.update_summary(status="extending", epochs=config.epochs)
        run.write_config(run_record(config, run.path))
    return loop.fit()


def _set_up(run: RunDir, config: TrainConfig | None, resume: bool, progress: bool, objective, on_step,
            dataset, model, callbacks: Sequence[Callback] = ()) -> tuple[Loop | None, TrainConfig, object]:
    """The loop of a run, restored from its checkpoint on resume (None for a finished run), its config
    and the shorter config it extends (or None); nothing is written but repairs of a finished run."""
    shorter = None
    if resume and run.exists:
        config, shorter = _check_resume(run, config, data_given=dataset is not None)
        if shorter is None and run.read_summary().get("status") == "done":
            verify_recorded_data(config)
            if distributed.is_main():
                if repair_weights(run):   # model.safetensors damaged or lost: the checkpoint has the weights
                    print(f"rdvae: rewrote {run / WEIGHTS} from {TRAINER_STATE}", file=sys.stderr)
                if config.log:   # trackers whose finish a kill or a failure left undone finish now
                    from ..tracking.dispatch import finish_unfinished

                    finish_unfinished(run, config)
            return None, config, None
    elif run.exists:
        raise ConfigError(
            f"{run.path} already holds a run; pass --resume to continue it or choose another --out"
        )
    elif config is None:
        raise ConfigError(f"nothing to resume in {run.path}: it has no config.json")
    else:
        _refuse_foreign(run)
    config.validated(data_given=dataset is not None)
    group = distributed.current()
    if group is not None and config.batch_size < group.world_size:
        raise ConfigError(f"batch_size {config.batch_size} is smaller than the world size "
                          f"{group.world_size}: "
                          "batch_size is the global batch, split over the ranks; give each rank at least one "
                          "example (raise --batch-size or start fewer processes)")
    loop = vae_loop(config, run, dataset, objective, progress, on_step, model, callbacks)
    if resume and (run / TRAINER_STATE).exists():
        loop.restore()
    if shorter is not None:
        check_extends(loop, shorter)
    return loop, config, shorter


DIVERGED_ADVICE = "lower the learning rate, enable normalized gradients, or raise skip_grad_norm"


def vae_loop(config: TrainConfig, run: RunDir, dataset=None, objective=None, progress: bool = True,
             on_step: Callable[[dict], None] | None = None, model=None,
             callbacks: Sequence[Callback] = ()) -> Loop:
    """The one loop (rdvae.engine.Loop) set up for a VAE run: the VAE plan and its callbacks (divergence
    rules, the plateau rule, the effective beta of a calibrated decoder, the trackers), then `callbacks`."""
    plan = VAEPlan(config, dataset, objective, model, progress and distributed.is_main())
    plan.plateau = Plateau(config, plan.steps_per_epoch())
    own = [SkipLimits(config.max_consecutive_skips, config.max_skipped_fraction, DIVERGED_ADVICE)]
    if distributed.is_main():   # under torchrun only rank 0 validates and reports (rdvae.engine.distributed)
        trackers = Trackers(run, config, plan)
        plan.diagnostics = trackers.active   # trackers also get I_q, active units and the effective beta
        # in this order: the effective beta joins the epoch's record before the trackers log it, and the
        # plateau rule reads the record from metrics.jsonl
        if EffectiveBeta.applies(plan.model, config):
            own.append(EffectiveBeta(config, plan, tracked=trackers.active))
        own.append(trackers)
    own.append(plan.plateau)
    options = FitOptions(epochs=config.epochs, seed=config.seed, device=plan.device,
                         precision=config.precision, skip_grad_norm=config.skip_grad_norm,
                         normalized_gradients=config.normalized_gradients,
                         checkpoint_minutes=config.checkpoint_minutes, progress=progress)
    return Loop(plan, run, options, [*own, *callbacks], on_step)


def check_extends(loop: Loop, shorter: TrainConfig) -> None:
    """Refuse to continue a run trained under `shorter` (fewer epochs) to this config's end
    if any step already taken would have had another learning rate."""
    config = loop.plan.config
    if "plateau" in (shorter.lr_schedule, config.lr_schedule):
        raise ConfigError(
            f"cannot extend {loop.where} to {config.epochs} epochs: under lr_schedule 'plateau' the "
            "decay depends on the validation curve, so a longer run is not this run continued; train a "
            "new run with --out")
    done = loop.counters["step"]
    before = loop.steps_per_epoch * shorter.epochs
    changed = next((s for s in range(done) if lr_factor(shorter.lr_schedule, s, before)
                    != lr_factor(config.lr_schedule, s, loop.total_steps)), None)
    if changed is not None:
        raise ConfigError(
            f"cannot extend {loop.where} from {shorter.epochs} to {config.epochs} epochs: "
            f"under lr_schedule {config.lr_schedule!r} step {changed} (of the {done} already "
            f"taken) would have had another learning rate than under the saved {shorter.lr_schedule!r} "
            f"schedule for {shorter.epochs} epochs; train a new run with --out, or extend a run whose "
            "schedule was 'constant' so far")
