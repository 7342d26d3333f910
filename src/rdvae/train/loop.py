"""The training loop: in-memory batches, Adam, schedules, evaluation every epoch,
atomic checkpoints, exact resume, and a guard against non-finite or exploding updates."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..components.decoders import BernoulliDecoder
from ..data import load_dataset
from ..device import autocast, resolve_device
from ..evaluate import evaluate_model
from ..presets import build_model
from ..rundir import SUMMARY, TRAINER_STATE, RunDir
from .checkpoint import load_checkpoint, save_checkpoint
from .config import ConfigError, TrainConfig
from .schedules import lr_factor


class TrainingDiverged(RuntimeError):
    """Updates kept being skipped (non-finite loss or exploding gradient)."""


def build_for_config(config: TrainConfig, event_shape) -> torch.nn.Module:
    """The model a config describes (deterministic given the current torch seed)."""
    return build_model(config.family, event_shape, config.latent_dim, **config.model)


def make_adam(params, lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam with the fused kernel where torch has one for the device (CPU and CUDA in
    torch >= 2.4); same update rule, fewer passes over memory."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr)


def _normalize_gradients(params: list[torch.nn.Parameter], eps: float = 1e-8) -> None:
    """Normalized gradients (Yu et al. 2017): each parameter tensor's gradient scaled to unit norm."""
    for p in params:
        if p.grad is not None:
            p.grad.div_(p.grad.norm() + eps)


def _split(ds, name: str) -> torch.Tensor:
    x = ds.split(name)
    if len(x) == 0 and name == "valid":
        return ds.split("test")
    return x


def _check_resume(run: RunDir, config: TrainConfig | None) -> TrainConfig:
    saved = TrainConfig.from_dict(run.read_config())
    if config is not None:
        diff = {k: (v, getattr(config, k)) for k, v in saved.to_dict().items()
                if getattr(config, k) != v}
        if diff:
            details = ", ".join(f"{k}: saved {a!r} vs given {b!r}" for k, (a, b) in diff.items())
            raise ConfigError(
                f"cannot resume {run.path} with a different config ({details}); "
                "resume without changing settings, or train into a new --out"
            )
    return saved


def train(config: TrainConfig | None, out: str | Path, resume: bool = False, progress: bool = True,
          objective=None, on_step: Callable[[dict], None] | None = None, dataset=None) -> dict:
    """Train the model a config describes into run directory `out`; return summary.json's dict.

    resume=True continues the run in `out` from its last checkpoint (config None: the saved
    one); the result equals that of an uninterrupted run with the same seed on the CPU.
    """
    run = RunDir(out)
    if resume and run.exists:
        config = _check_resume(run, config)
        if run.read_summary().get("status") == "done":
            return run.read_summary()
    elif run.exists:
        raise ConfigError(
            f"{run.path} already holds a run; pass --resume to continue it or choose another --out"
        )
    elif config is None:
        raise ConfigError(f"nothing to resume in {run.path}: it has no config.json")
    config.validated()
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_config(config.to_dict())

    device = resolve_device(config.device)
    ds = dataset if dataset is not None else load_dataset(config.dataset, binarize=config.binarize)
    train_x = ds.split("train").to(device)
    eval_x, final_x = _split(ds, config.eval_split), _split(ds, config.final_split)

    torch.manual_seed(config.seed)
    model = build_for_config(config, ds.event_shape).to(device)
    if isinstance(model.decoder, BernoulliDecoder) and not ds.binary:
        warnings.warn(
            f"{ds.name} holds grey levels but the decoder is Bernoulli, so D is not a proper "
            "log-likelihood; pass binarize='dynamic' (or 'static') for binary data", stacklevel=2)
    model.marginal.initialize_from_data(train_x)
    objective = objective or config.objective()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_adam(params, config.lr, device)
    shuffle = torch.Generator().manual_seed(config.seed + 1)

    steps_per_epoch = math.ceil(len(train_x) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    counters = {"epoch": 0, "step": 0, "batch": 0, "skipped": 0, "consecutive_skips": 0,
                "train_seconds": 0.0}
    epoch_start_shuffle = shuffle.get_state()
    if resume and (run / TRAINER_STATE).exists():
        counters, rng = load_checkpoint(run, model, optimizer, device)
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], device)
        epoch_start_shuffle = rng["shuffle_epoch_start"]
        shuffle.set_state(rng["shuffle"])
        run.keep_metrics(m for m in run.read_metrics() if m["epoch"] <= counters["epoch"])
    elif (run / "metrics.jsonl").exists():
        (run / "metrics.jsonl").unlink()

    def checkpoint():
        rng = {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state(),
               "shuffle_epoch_start": epoch_start_shuffle}
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(device)
        save_checkpoint(run, model, optimizer, counters, rng)

    bar = tqdm(total=total_steps, initial=counters["step"], disable=not progress, unit="step",
               desc=f"{config.family} {config.dataset} {objective.describe()}", dynamic_ncols=True)
    last_checkpoint = time.monotonic()
    started = time.monotonic() - counters["train_seconds"]
    while counters["epoch"] < config.epochs:
        model.train()
        if counters["batch"] == 0:
            epoch_start_shuffle = shuffle.get_state()
            order = torch.randperm(len(train_x), generator=shuffle)
        else:  # resumed mid-epoch: redraw this epoch's permutation from its starting state
            replay = torch.Generator()
            replay.set_state(epoch_start_shuffle)
            order = torch.randperm(len(train_x), generator=replay)
        order = order.to(device)
        sums = torch.zeros(3, dtype=torch.float64)
        seen = 0
        for b in range(counters["batch"], steps_per_epoch):
            idx = order[b * config.batch_size:(b + 1) * config.batch_size]
            x = ds.train_transform(train_x[idx], shuffle)
            for group in optimizer.param_groups:
                group["lr"] = config.lr * lr_factor(config.lr_schedule, counters["step"], total_steps)
            with autocast(config.precision, device):
                out = model(x)
                loss = objective(out.rate.float(), out.distortion.float(), counters["step"])
            optimizer.zero_grad(set_to_none=True)
            skip = not torch.isfinite(loss)
            if not skip:
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(params, math.inf)
                skip = not (math.isfinite(grad_norm) and grad_norm <= config.skip_grad_norm)
            if skip:
                counters["skipped"] += 1
                counters["consecutive_skips"] += 1
                if counters["consecutive_skips"] > config.max_consecutive_skips:
                    bar.close()
                    raise TrainingDiverged(
                        f"{counters['consecutive_skips']} consecutive updates skipped at step "
                        f"{counters['step']} (non-finite loss or gradient norm above "
                        f"{config.skip_grad_norm:g}); the last good checkpoint in {run.path} is "
                        "kept. Lower the learning rate, enable normalized gradients, or raise "
                        "skip_grad_norm."
                    )
            else:
                counters["consecutive_skips"] = 0
                if config.normalized_gradients:
                    _normalize_gradients(params)
                optimizer.step()
                sums += torch.stack([loss.detach(), out.rate.detach().mean(),
                                     out.distortion.detach().mean()]).double().cpu() * len(idx)
                seen += len(idx)
            counters["step"] += 1
            counters["batch"] = b + 1
            bar.update(1)
            if counters["step"] % 10 == 0 and seen:
                loss_avg, r, d = (sums / seen).tolist()
                bar.set_postfix(R=f"{r:.2f}", D=f"{d:.2f}", loss=f"{loss_avg:.2f}",
                                skipped=counters["skipped"], refresh=False)
            if on_step is not None:
                on_step(dict(counters))
            if (b + 1 < steps_per_epoch
                    and time.monotonic() - last_checkpoint > 60 * config.checkpoint_minutes):
                counters["train_seconds"] = time.monotonic() - started
                checkpoint()
                last_checkpoint = time.monotonic()

        counters["epoch"] += 1
        counters["batch"] = 0
        counters["train_seconds"] = time.monotonic() - started
        evaluation = evaluate_model(model, eval_x, batch_size=config.eval_batch_size,
                                    seed=config.seed, precision=config.precision, diagnostics=False)
        train_avg = (sums / max(seen, 1)).tolist()
        run.append_metrics({
            "epoch": counters["epoch"], "step": counters["step"], "split": config.eval_split,
            "rate": evaluation["rate"], "distortion": evaluation["distortion"],
            "elbo": evaluation["elbo"], "train_loss": train_avg[0], "train_rate": train_avg[1],
            "train_distortion": train_avg[2], "skipped": counters["skipped"],
            "lr": optimizer.param_groups[0]["lr"], "train_seconds": counters["train_seconds"],
        })
        checkpoint()
        last_checkpoint = time.monotonic()
    bar.close()

    final = evaluate_model(model, final_x, iw_samples=config.iw_samples,
                           batch_size=config.eval_batch_size, seed=config.seed,
                           precision=config.precision, progress=progress)
    summary = {
        **final,
        "status": "done",
        "beta": None if config.target_rate is not None else config.beta,
        "target_rate": config.target_rate,
        "family": config.family,
        "dataset": config.dataset,
        "split": config.final_split,
        "epochs": config.epochs,
        "seed": config.seed,
        "latent_dim": model.latent_dim,
        "train_seconds": counters["train_seconds"],
        "skipped_updates": counters["skipped"],
        "params": model.num_parameters(),
    }
    run.update_summary(**summary)
    assert (run / SUMMARY).exists()
    return summary
