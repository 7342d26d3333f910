"""The VAE plan: one step of any registered objective on any model of the rdvae.protocols contract,
for the one loop (rdvae.engine). It sets up the run's model and data (contract check, likelihood
support, data-dependent initialisation), draws each epoch's batches, and measures the validation
split after every epoch and the final split at the end."""

from __future__ import annotations

import math

import torch

from ..data.streaming import TrainSplit
from ..device import resolve_device
from ..engine import Plan, Step, TrainingDiverged, distributed
from ..engine.optimizers import build_optimizer
from ..errors import ConfigError, EvaluationError
from ..evaluate import evaluate_model
from ..protocols import CONTRACT_EXAMPLES, check_model_contract
from .config import TrainConfig
from .data import check_likelihood, dataset_for, resolve_auto_binarize
from .schedules import lr_factor, plateau_factor

STREAMED_INIT_EXAMPLES = 4096   # examples a streamed split lends to data-dependent initialisation


def final_evaluation(model: torch.nn.Module, x: torch.Tensor, config: TrainConfig,
                     progress: bool = False) -> dict:
    """The evaluation a finished run's summary holds: `x` (its final split) with the config's
    IW samples, batch size, seed and precision."""
    return evaluate_model(model, x, iw_samples=config.iw_samples, batch_size=config.eval_batch_size,
                          seed=config.seed, precision=config.precision, progress=progress)


def evaluation_split(ds, name: str) -> torch.Tensor:
    """A split to evaluate (valid falls back to test where a dataset has no validation split)."""
    if name == "train" and ds.streamed:
        raise ConfigError(f"{ds.name}'s train split is streamed, so it cannot be evaluated as a whole; "
                          "evaluate valid or test (eval_split, final_split)")
    x = ds.split(name)
    if len(x) == 0 and name == "valid":
        return ds.split("test")
    return x


class VAEPlan(Plan):
    """A VAE trained with a registered objective (config.objective_instance()) on its dataset."""

    kind = "vae"
    shown = ("rate", "distortion", "loss")

    def __init__(self, config: TrainConfig, dataset=None, objective=None, model=None, progress: bool = True):
        from .loop import build_for_config

        self.config, self.progress = config, progress
        group = distributed.current()   # under torchrun each rank's own device
        self.device = group.device if group is not None else resolve_device(config.device)
        ds = dataset_for(config, dataset)
        torch.manual_seed(config.seed)
        built = model is None   # of the config's family: the contract check names its registered parts
        if model is None:
            model = build_for_config(config, ds.event_shape)
        self.model = model.to(self.device)
        ds = resolve_auto_binarize(config, self.model, ds, progress)
        self.dataset = ds
        self.train_split = TrainSplit(ds, self.device)
        self.eval_x = evaluation_split(ds, config.eval_split)
        self.final_x = evaluation_split(ds, config.final_split)
        # the model contract (rdvae.protocols) on a few training examples: a broken part is one line naming it
        check_model_contract(self.model, ds.train_transform(self.train_split.head(CONTRACT_EXAMPLES),
                                                            torch.Generator().manual_seed(0)),
                             ds.event_shape, family=config.family if built else None)
        if not config.allow_improper_likelihood:
            check_likelihood(self.model, ds, self.train_split.head(256))
        # data-dependent initialisation (e.g. VampPrior pseudo-inputs) from the split, or its head if streamed
        self.model.marginal.initialize_from_data(self.train_split.source if self.train_split.in_memory
                                                 else self.train_split.head(STREAMED_INIT_EXAMPLES))
        self.objective = objective or config.objective_instance()
        self.objective.prepare(self.model, self.train_split.source)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.diagnostics = False   # I_q and active units every epoch (set when trackers want them)
        self.plateau = None        # the Plateau callback whose decay the 'plateau' schedule follows

    # -- steps ---------------------------------------------------------------------------------
    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        config = self.config
        return [build_optimizer(getattr(config, "optimizer", "adam"), self.params, config.lr,
                                getattr(config, "optimizer_options", {}), where=" (optimizer_options)")]

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.train_split) / self.config.batch_size)

    def epoch_batches(self, order: torch.Generator, shuffle: torch.Generator, start: int):
        permutation = torch.randperm(len(self.train_split), generator=order).to(self.device)
        for x in self.train_split.batches(permutation, self.config.batch_size, start=start):
            yield self.dataset.train_transform(x, shuffle)

    def training_step(self, x: torch.Tensor, step: int, index: int) -> Step:
        out = self.objective(self.model, x, step)
        return Step(out.loss, {"loss": out.loss, "rate": out.rate.mean(), "distortion": out.distortion.mean(),
                               **(getattr(out, "terms", None) or {})})

    def lr_factor(self, step: int) -> float:
        config = self.config
        if config.lr_schedule == "plateau":
            decay_from = self.plateau.decay_from if self.plateau is not None else None
            return plateau_factor(step, decay_from, config.decay_epochs * self.steps_per_epoch())
        return lr_factor(config.lr_schedule, step, self.steps_per_epoch() * config.epochs)

    # -- epochs and the end --------------------------------------------------------------------
    def validate(self, loop, train_means: dict[str, float]) -> dict:
        config, counters = self.config, loop.counters
        try:
            evaluation = evaluate_model(self.model, self.eval_x, batch_size=config.eval_batch_size,
                                        seed=config.seed, precision=config.precision,
                                        diagnostics=self.diagnostics)
        except EvaluationError as err:   # not checkpointed: the last good checkpoint stays
            raise TrainingDiverged(f"after epoch {counters['epoch']}: {err}; {kept(loop)}") from None
        shown = ("loss", "rate", "distortion")
        record = {
            **{f"train_{name}": value for name, value in train_means.items() if name not in shown},
            "split": config.eval_split,
            "rate": evaluation["rate"], "distortion": evaluation["distortion"], "elbo": evaluation["elbo"],
            "objective": self.objective.validation_loss(evaluation["rate"], evaluation["distortion"]),
            **{f"train_{name}": train_means.get(name, 0.0) for name in shown},
            "skipped": counters["skipped"],
            "lr": loop.optimizers[0].param_groups[0]["lr"], "train_seconds": counters["train_seconds"],
        }
        if self.diagnostics:
            record.update({k: evaluation[k] for k in ("mutual_info", "active_units") if k in evaluation})
        return record

    def summary(self, loop) -> dict:
        config, counters = self.config, loop.counters
        try:
            final = final_evaluation(self.model, self.final_x, config, progress=self.progress)
        except EvaluationError as err:
            raise TrainingDiverged(f"at the end of training: {err}; the checkpoint in {loop.where} is "
                                   "kept") from None
        return {
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
            "train_seconds": counters["train_seconds"],
            "skipped_updates": counters["skipped"],
            "params": self.model.num_parameters(),
        }

    def describe(self) -> str:
        config = self.config
        return f"{config.family} {config.dataset} {self.objective.describe()}"


def kept(loop) -> str:
    """Which checkpoint a diverged run keeps."""
    epoch = loop.counters["epoch"] - 1
    kept = (f"epoch {epoch}'s checkpoint in {loop.where} is kept as the last good one" if epoch > 0
            else "no checkpoint was written (the first epoch already diverged)")
    return f"{kept}; lower the learning rate, enable normalized gradients, or raise skip_grad_norm"
