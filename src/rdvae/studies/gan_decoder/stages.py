"""Stages 1 and 2 of the GAN-as-decoder experiment ([Re] VAE approximation error, section 4) as plans on
the one loop (rdvae.engine), trained on fresh draws of the ground truth p*(z, x) = N(z; 0, I)
N(x; g0(z), sigma^2 I) (ground_truth), never on real images:

    stage1-encoder   the encoder alone by conditional likelihood, loss -log e(z|x) on the pairs (z, x)
                     of each draw (the decoder, g0 itself, frozen and in eval mode)
    stage2-joint     encoder and decoder jointly by the ELBO of the draws' x, loss D + R (beta = 1),
                     starting from stage 1; the decoder moves away from g0, the draws do not

The decoder runs in eval mode in both stages (BatchNorm with g0's running statistics, as a fine-tuned
network's often does): stage 2 then starts from g0 exactly and minimises the per-example negative ELBO
that it is measured by. (With batch statistics, the decoder at stage 2's first step would already not be
g0; docs/results/gan-decoder.md shows what that does to the ELBO's first steps.)

Every step draws a fresh batch: a seed from the loop's checkpointed generator, then z and the noise from
that seed, so a run killed mid-epoch and resumed draws the same batches (and ends with the same weights)
as one run through. An "epoch" is `epoch_steps` updates; after each, the stage is measured on a fixed
held-out set of draws (`validation_samples`, `validation_seed`): the ELBO with R and D
(rdvae.evaluate.evaluate_model) and the conditional log-likelihood log e(z|x) of the held-out pairs.

Each stage stops at `max_steps`, or earlier by its own convergence criterion (Converged): a plateau of
its training loss measured on the held-out draws (stage 1: -log e(z|x); stage 2: -ELBO).

A stage's run folder is a run directory (rdvae.rundir) of kind "gan-decoder-stage": config.json (a
StageConfig), metrics.jsonl (one line per epoch), summary.json, model.safetensors (the VAE, family
`dcgan`) and trainer_state.safetensors; `train_stage(..., resume=True)` continues an interrupted stage,
`load_stage` rebuilds its model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import Tensor

from rdvae.device import SEED_MAX, check_device, resolve_device, seeded
from rdvae.engine import Callback, FitOptions, Loop, MetricsFile, Plan, SkipLimits, Step, TrainingDiverged
from rdvae.engine.checkpoint import load_weights
from rdvae.engine.optimizers import build_optimizer
from rdvae.errors import ConfigError, EvaluationError
from rdvae.evaluate import evaluate_model
from rdvae.evaluate.batching import mean_and_stderr
from rdvae.objectives import BetaObjective
from rdvae.presets import build_model
from rdvae.rundir import METRICS, TRAINER_STATE, RunDir
from rdvae.settings import Setting, check_fields, choice, declare, integer, number, string
from rdvae.train.schedules import plateau_improvement

from .dcgan import PAPER_SIGMA
from .ground_truth import Draws, GroundTruth

KIND = "gan-decoder-stage"
STAGES = ("stage1-encoder", "stage2-joint")
# what each stage minimises, measured on the held-out draws: the figure its convergence criterion watches
CRITERION = {"stage1-encoder": "conditional_nll", "stage2-joint": "neg_elbo"}
MAX_CONSECUTIVE_SKIPS = 100
DRAW_SEEDS = 2**62   # each batch's seed is drawn from [0, DRAW_SEEDS)


def _image_shape(value) -> bool:
    return len(value) == 3 and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)


@dataclass
class StageConfig:
    """Everything that rebuilds and re-runs one stage, besides the ground truth and the model it starts
    from (which the study passes: the GAN's generator, and stage 1's weights for stage 2)."""

    stage: str = choice("stage1-encoder", STAGES, "which stage: the encoder by conditional likelihood, or "
                        "encoder and decoder jointly by the ELBO")
    event_shape: list = declare([1, 32, 32], Setting("list", "the images' shape [C, H, W]",
                                                     accept=_image_shape,
                                                     what="a list [C, H, W] of integers >= 1"))
    latent_dim: int = integer(100, "latent dimensions (the generator's input)", low=1)
    ngf: int = integer(32, "the generator's base width", low=1)
    ndf: int = integer(32, "the encoder's base width (the discriminator's stack)", low=1)
    sigma: float = number(PAPER_SIGMA, "the observation noise of ground truth and decoder, [0, 1] units",
                          low=0, low_open=True)
    max_steps: int = integer(20_000, "the cap on updates (a multiple of epoch_steps)", low=1)
    epoch_steps: int = integer(500, "updates between two measurements on the held-out draws (and "
                               "checkpoints)", low=1)
    batch_size: int = integer(128, "draws of the ground truth per update", low=1)
    lr: float = number(2e-4, "Adam's learning rate", low=0, low_open=True)
    validation_samples: int = integer(2000, "held-out draws measured after every epoch", low=2)
    validation_seed: int = integer(1, "the seed of the held-out draws", low=0, high=SEED_MAX)
    plateau_epochs: int = integer(4, "the convergence criterion's window in epochs (0: none, train to "
                                  "max_steps)", low=0)
    plateau_nats: float = number(1.0, "converged when the best held-out criterion of the last "
                                 "plateau_epochs epochs improves on the best before them by less than this",
                                 low=0)
    seed: int = integer(0, "the seed of the training draws and of the ELBO's z draws", low=0, high=SEED_MAX)
    device: str = string("auto", "auto, cpu, cuda, cuda:N or mps")
    checkpoint_minutes: float = number(10.0, "also checkpoint mid-epoch this often (0: every step)", low=0)
    kind: str = choice(KIND, (KIND,), "the kind of run")

    def validated(self) -> StageConfig:
        check_fields(self)
        check_device(self.device)
        if self.max_steps % self.epoch_steps:
            raise ConfigError(f"max_steps must be a multiple of epoch_steps ({self.epoch_steps}), got "
                              f"{self.max_steps}")
        return self

    @property
    def epochs(self) -> int:
        return self.max_steps // self.epoch_steps

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> StageConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown stage config field(s) {unknown}; known: {', '.join(sorted(known))}")
        return cls(**values).validated()


# -- measuring a stage on held-out draws ---------------------------------------------------------------

@torch.no_grad()
def conditional_log_likelihood(model, draws: Draws, batch_size: int = 1000) -> Tensor:
    """log e(z|x) of each pair (z, x) of the draws [n] (the encoder in eval mode): how likely the
    encoder finds the z that made x, the quantity stage 1 maximises."""
    model.eval()
    return torch.cat([model.encoder(draws.x[s:s + batch_size]).log_prob(draws.z[s:s + batch_size]).cpu()
                      for s in range(0, len(draws.z), batch_size)])


def held_out_figures(model, draws: Draws, seed: int, batch_size: int = 1000) -> dict:
    """A stage on held-out draws of the ground truth: R, D and the ELBO of their x with standard errors
    (rdvae.evaluate, one z ~ e(z|x) each, under `seed`), and the conditional negative log-likelihood
    -log e(z|x) of their pairs with its standard error; neg_elbo = R + D."""
    evaluation = evaluate_model(model, draws.x, batch_size=batch_size, seed=seed, diagnostics=False)
    nll, nll_se = mean_and_stderr(-conditional_log_likelihood(model, draws, batch_size).double())
    if not math.isfinite(nll):
        raise EvaluationError(f"the conditional log-likelihood is not finite ({nll}): a diverged encoder?")
    return {"elbo": evaluation["elbo"], "elbo_se": evaluation["elbo_se"], "rate": evaluation["rate"],
            "distortion": evaluation["distortion"], "neg_elbo": -evaluation["elbo"],
            "conditional_nll": nll, "conditional_nll_se": nll_se, "held_out": len(draws.z)}


# -- the plan and its convergence criterion -------------------------------------------------------------

class Converged(Callback):
    """A stage's own convergence criterion: after each epoch, the held-out figure `monitor` (lower is
    better) has plateaued when the best of the last `epochs` values improves on the best before them by
    less than `nats` (rdvae.train.schedules.plateau_improvement); training then stops, converged.
    epochs 0: no criterion (the stage runs to its cap, not converged)."""

    name = "converged"

    def __init__(self, monitor: str, epochs: int, nats: float):
        self.monitor, self.epochs, self.nats = monitor, epochs, nats
        self.values: list[float] = []
        self.gain: float | None = None
        self.converged = False

    def on_validation(self, loop, record: dict) -> None:
        self.values.append(record[self.monitor])
        self.gain = plateau_improvement(self.values, self.epochs) if self.epochs else None
        record["plateau_gain"] = self.gain
        if self.gain is not None and self.gain < self.nats:
            self.converged = True
            loop.stop_reason = "plateau"

    def on_fit_end(self, loop, summary: dict) -> None:
        summary.update(converged=self.converged, plateau_gain=self.gain, criterion=self.monitor,
                       stop_reason="plateau" if self.converged else "cap")

    def state_dict(self) -> dict:
        return {"values": self.values, "gain": self.gain, "converged": self.converged}

    def load_state_dict(self, state: dict) -> None:
        self.values = list(state.get("values", []))
        self.gain, self.converged = state.get("gain"), bool(state.get("converged", False))


class StagePlan(Plan):
    """One stage on fresh draws of the ground truth (see the module docstring). `model` (a VAE of family
    `dcgan`) is trained in place."""

    kind = KIND
    shown = ("loss",)

    def __init__(self, config: StageConfig, truth: GroundTruth, model, progress: bool = True):
        self.config, self.progress = config, progress
        self.device = resolve_device(config.device)
        if list(truth.event_shape) != list(config.event_shape) or truth.latent_dim != config.latent_dim:
            raise ConfigError(f"the ground truth draws images {list(truth.event_shape)} from "
                              f"{truth.latent_dim} latents; the stage config says {config.event_shape} and "
                              f"{config.latent_dim}")
        self.truth = truth.to(self.device)
        self.model = model.to(self.device)
        self.joint = config.stage == "stage2-joint"
        self.model.requires_grad_(True)
        if not self.joint:   # stage 1: the decoder (g0) and the marginal stay as they are
            self.model.decoder.requires_grad_(False)
            self.model.marginal.requires_grad_(False)
        self.objective = BetaObjective(1.0)   # stage 2's loss: D + R, the negative ELBO
        self.validation = truth.draw(config.validation_samples, seed=config.validation_seed)
        torch.manual_seed(config.seed)   # stage 2's z ~ e(z|x) draws (a resumed run restores the stream)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        return [build_optimizer("adam", params, self.config.lr)]

    def steps_per_epoch(self) -> int:
        return self.config.epoch_steps

    def epoch_batches(self, order: torch.Generator, shuffle: torch.Generator, start: int):
        """Fresh draws of the ground truth, each batch from a seed drawn from the loop's live (and
        checkpointed) generator."""
        for _ in range(start, self.config.epoch_steps):
            seed = int(torch.randint(0, DRAW_SEEDS, (), generator=shuffle))
            yield self.truth.draw(self.config.batch_size, seed)

    def batch_size(self, batch: Draws) -> int:
        return len(batch.z)

    def train(self) -> None:
        """The encoder in training mode; the decoder in eval mode in both stages: BatchNorm keeps g0's
        running statistics, so that stage 2 starts at g0 itself and trains the per-example ELBO it is
        measured by (its weights, BatchNorm's affine ones included, still move)."""
        self.model.train()
        self.model.decoder.eval()

    def training_step(self, draws: Draws, step: int, index: int) -> Step:
        if not self.joint:
            nll = -self.model.encoder(draws.x).log_prob(draws.z).mean()
            return Step(nll, {"loss": nll})
        out = self.objective(self.model, draws.x, step)
        return Step(out.loss, {"loss": out.loss, "rate": out.rate.mean(),
                               "distortion": out.distortion.mean()})

    def measure(self, loop) -> dict:
        try:
            figures = held_out_figures(self.model, self.validation, seed=self.config.seed)
        except EvaluationError as err:   # not checkpointed: the last good checkpoint stays
            raise TrainingDiverged(f"{self.config.stage} after epoch {loop.counters['epoch']}: {err}; the "
                                   f"checkpoint in {loop.where} is kept") from None
        return {**figures, "objective": figures[CRITERION[self.config.stage]]}

    def validate(self, loop, train_means: dict[str, float]) -> dict:
        counters = loop.counters
        return {**{f"train_{k}": v for k, v in train_means.items()}, **self.measure(loop),
                "skipped": counters["skipped"], "train_seconds": counters["train_seconds"]}

    def summary(self, loop) -> dict:
        config, counters = self.config, loop.counters
        return {"status": "done", "kind": KIND, "stage": config.stage, **self.measure(loop),
                "steps_trained": counters["step"], "epochs_trained": counters["epoch"],
                "max_steps": config.max_steps, "train_seconds": counters["train_seconds"],
                "skipped_updates": counters["skipped"], "seed": config.seed}

    def describe(self) -> str:
        return self.config.stage


def stage_loop(config: StageConfig, run: RunDir, truth: GroundTruth, model, progress: bool = True) -> Loop:
    """The one loop set up for a stage: the plan, the divergence rule, the convergence criterion and
    metrics.jsonl."""
    plan = StagePlan(config, truth, model, progress)
    callbacks = [SkipLimits(MAX_CONSECUTIVE_SKIPS, advice="lower the learning rate"),
                 Converged("objective", config.plateau_epochs, config.plateau_nats), MetricsFile()]
    options = FitOptions(epochs=config.epochs, seed=config.seed, device=plan.device,
                         checkpoint_minutes=config.checkpoint_minutes, progress=progress)
    return Loop(plan, run, options, callbacks)


def train_stage(config: StageConfig, out: str | Path, truth: GroundTruth, model, resume: bool = True,
                progress: bool = True) -> dict:
    """Train one stage into run directory `out` from `model` (trained in place) on draws of `truth`;
    returns summary.json's dict. resume: continue an interrupted stage from its last checkpoint (the
    config must equal the saved one), or return a finished stage's summary as it is."""
    run = RunDir(out)
    config.validated()
    if run.exists:
        if not resume:
            raise ConfigError(f"{run.path} already holds a run; pass resume=True to continue it or choose "
                              "another out")
        saved = StageConfig.from_dict(run.read_config())
        if saved != config:
            diff = {k: (v, getattr(config, k)) for k, v in saved.to_dict().items() if getattr(config, k) != v}
            raise ConfigError(f"cannot resume {run.path} with a different config ({diff}); resume without "
                              "changing settings or train into a new folder")
        if run.read_summary().get("status") == "done":
            return run.read_summary()
    loop = stage_loop(config, run, truth, model, progress)
    run.path.mkdir(parents=True, exist_ok=True)
    run.remove_temporary()
    if (run / TRAINER_STATE).exists():
        loop.restore()
    else:
        (run / METRICS).unlink(missing_ok=True)
    run.write_config(config.to_dict())
    return loop.fit()


def load_stage(path: str | Path, device: str = "cpu"):
    """The model of a stage's run folder (its last checkpoint's weights, eval mode) and its config."""
    run = RunDir(path)
    if not run.exists:
        raise ConfigError(f"{run.path} is not a run directory (no config.json); train the stage there first")
    config = StageConfig.from_dict(run.read_config())
    with seeded(config.seed):
        model = build_model("dcgan", tuple(config.event_shape), config.latent_dim, ngf=config.ngf,
                            ndf=config.ndf, sigma=config.sigma)
    load_weights(run, model, device)
    return model.to(device).eval(), config
