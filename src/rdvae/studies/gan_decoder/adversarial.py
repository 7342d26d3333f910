"""Training a DCGAN (dcgan, beside this module) into a run directory, with the mode-collapse guard of the
GAN-as-decoder experiment: after every epoch, the FID of generated samples against held-out images;
the run keeps the checkpoint of the epoch before the first epoch whose FID is worse (by more than
`collapse_tolerance`) and stops there ("select a checkpoint one epoch before mode collapse", [Re]
section 4, after Brock et al. 2019).

The loss is the non-saturating one of the PyTorch DCGAN tutorial: the discriminator minimises
BCE(D(x), 1) + BCE(D(G(z)), 0) (real and fake in separate batches), then the generator minimises
BCE(D(G(z)), 1), each with its own Adam (lr 2e-4, betas (0.5, 0.999)): the tutorial's two optimisers.

It is a plan (GANPlan) on the one loop (rdvae.engine): two optimizers, the FID after every epoch as
its validation, and the collapse rule as a callback (ModelSelection, monitor "fid", mode "min"). The
run directory is the VAE runs' (rundir): config.json (a GANConfig, "kind": "gan"), metrics.jsonl
(one line per epoch: losses, D(x), D(G(z)), FID), summary.json, model.safetensors (generator and
discriminator of the selected epoch) and trainer_state.safetensors, written atomically after every
epoch and every checkpoint_minutes; `train_gan(..., resume=True)` continues an interrupted run
exactly where it stopped.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F

from rdvae.data import load_dataset
from rdvae.data.dataset import SPLITS
from rdvae.device import SEED_MAX, check_device, resolve_device, seeded
from rdvae.engine import (
    FitOptions,
    Loop,
    MetricsFile,
    ModelSelection,
    Plan,
    SkipLimits,
    Step,
    TrainingDiverged,
)
from rdvae.engine.optimizers import build_optimizer
from rdvae.errors import ConfigError
from rdvae.rundir import METRICS, TRAINER_STATE, WEIGHTS, RunDir, load_tensors
from rdvae.settings import check_fields, choice, integer, mapping, number, string

from .dcgan import GAN, NDF, NGF, dcgan

KIND = "gan"
MAX_CONSECUTIVE_SKIPS = 100


@dataclass
class GANConfig:
    """Everything that rebuilds and re-runs a GAN run; each field declared once (rdvae.settings)."""

    dataset: str = string("mnist", "the images the GAN learns", what="a dataset name or path",
                          accept=bool)
    data: dict = mapping("the dataset loader's options (e.g. pad=2)")
    latent_dim: int = integer(100, "dimensions of the generator's input z", low=1)
    ngf: int = integer(NGF, "the generator's width", low=1)
    ndf: int = integer(NDF, "the discriminator's width", low=1)
    epochs: int = integer(5, "the cap; the collapse guard may stop earlier", low=1)
    batch_size: int = integer(128, "real images per update", low=1)
    lr: float = number(2e-4, "both Adams' learning rate", low=0, low_open=True)
    adam_beta1: float = number(0.5, "Adam's beta1", low=0, high=1, high_open=True)
    adam_beta2: float = number(0.999, "Adam's beta2", low=0, high=1, high_open=True)
    seed: int = integer(0, "seed of the weights, batches and draws", low=0, high=SEED_MAX)
    device: str = string("auto", "auto (CUDA when present), cpu, cuda or cuda:N")
    fid_samples: int = integer(2000, "generated images per epoch for the collapse guard", low=2)
    fid_split: str = choice("valid", SPLITS, "the held-out images they are compared with")
    collapse_tolerance: float = number(0.05, "an FID more than this fraction above the previous epoch's "
                                       "stops the run", low=0)
    classifier_epochs: int = integer(2, "epochs of the FID feature classifier (rdvae.fid)", low=1)
    inception: str | None = string(None, "a TorchScript feature network for the FID instead of rdvae's "
                                   "classifier (rdvae.fid.inception)", optional=True,
                                   what="the path of a TorchScript file")
    checkpoint_minutes: float = number(10.0, "also checkpoint mid-epoch this often (0: every step)", low=0)
    kind: str = choice(KIND, (KIND,), "what trains from this config")

    def validated(self) -> GANConfig:
        check_fields(self)
        if self.inception is not None and not Path(self.inception).is_file():
            raise ConfigError(f"inception: no TorchScript feature network at {self.inception!r}; give the "
                              "file (rdvae downloads no weights) or null for rdvae's classifier features")
        check_device(self.device)
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> GANConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown GAN config field(s) {unknown}; known: {', '.join(sorted(known))}")
        return cls(**values).validated()


def build_gan(config: GANConfig, event_shape) -> GAN:
    torch.manual_seed(config.seed)
    try:
        return dcgan(event_shape, config.latent_dim, config.ngf, config.ndf)
    except ValueError as err:
        raise ConfigError(f"dataset {config.dataset!r}: {err}") from None


def load_gan(path: str | Path, device: str = "cpu") -> tuple[GAN, GANConfig]:
    """The GAN of a run directory (the selected epoch's weights, eval mode) and its config."""
    run = RunDir(path)
    if not run.exists:
        raise ConfigError(f"{run.path} is not a run directory (no config.json); train a GAN there first")
    config = GANConfig.from_dict(run.read_config())
    if not (run / WEIGHTS).exists():
        raise ConfigError(f"{run.path} has no {WEIGHTS} yet: resume the GAN run to finish its first epoch")
    ds = load_dataset(config.dataset, **config.data)
    gan = build_gan(config, ds.event_shape)
    tensors, _ = load_tensors(run / WEIGHTS, device=device)
    gan.load_state_dict(tensors)
    return gan.to(device).eval(), config


def fid_features(config: GANConfig, progress: bool = True) -> tuple[torch.nn.Module, dict]:
    """The FID feature network of a GAN run and a description of it: the TorchScript network given, or
    rdvae's classifier of the dataset (which needs labelled images)."""
    from rdvae.fid import TorchScriptFeatures, feature_classifier

    if config.inception is not None:
        return TorchScriptFeatures(config.inception), {"features": f"TorchScript {config.inception}"}
    try:
        net, meta = feature_classifier(config.dataset, epochs=config.classifier_epochs, progress=progress,
                                       data_options=config.data)
    except ValueError as err:   # unlabelled images (e.g. CelebA): no classifier to train
        raise ConfigError(f"{err}; for unlabelled images give a TorchScript Inception network "
                          "(GANConfig.inception, rdvae repro --inception FILE)") from None
    return net, {"features": "rdvae classifier", **meta}


@torch.no_grad()
def generate(generator, n: int, seed: int, batch_size: int = 500) -> torch.Tensor:
    """n images g(z), z ~ N(0, I) under `seed`, the generator in eval mode (its BatchNorm running
    statistics: one fixed function)."""
    was = generator.training
    generator.eval()
    device = next(generator.parameters()).device
    try:
        with seeded(seed, device):
            z = torch.randn(n, generator.latent_dim, device=device)
        return torch.cat([generator(z[s:s + batch_size]).cpu() for s in range(0, n, batch_size)])
    finally:
        generator.train(was)


class GANPlan(Plan):
    """A DCGAN on the one loop: index 0 updates the discriminator on real and generated batches,
    index 1 the generator through the updated discriminator; after every epoch the FID of generated
    samples against the held-out split."""

    kind = KIND
    shown = ("loss_discriminator", "loss_generator")

    def __init__(self, config: GANConfig, progress: bool = True):
        from rdvae.fid import image_statistics

        self.config, self.progress = config, progress
        self.device = resolve_device(config.device)
        ds = load_dataset(config.dataset, **config.data)
        if ds.binary or len(ds.event_shape) != 3:
            raise ConfigError(f"a DCGAN needs grey-level or colour images; {ds.describe()}")
        self.dataset = ds
        self.model = self.gan = build_gan(config, ds.event_shape).to(self.device)
        self.train_x = ds.train.to(self.device)
        self.features, self.classifier = fid_features(config, progress)
        self.reference = image_statistics(self.features, ds.split(config.fid_split))
        self._generated = None   # the step's generated batch, shared by its two updates

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        config = self.config
        options = {"betas": [config.adam_beta1, config.adam_beta2], "fused": False}
        return [build_optimizer("adam", self.gan.discriminator.parameters(), config.lr, options),
                build_optimizer("adam", self.gan.generator.parameters(), config.lr, options)]

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.train_x) / self.config.batch_size)

    def epoch_batches(self, order: torch.Generator, shuffle: torch.Generator, start: int):
        size = self.config.batch_size
        permutation = torch.randperm(len(self.train_x), generator=order).to(self.device)
        for b in range(start, self.steps_per_epoch()):
            yield self.train_x[permutation[b * size:(b + 1) * size]]

    def training_step(self, real: torch.Tensor, step: int, index: int) -> Step:
        g, d = self.gan.generator, self.gan.discriminator
        if index == 0:   # the discriminator: BCE(D(x), 1) + BCE(D(G(z)), 0)
            z = torch.randn(len(real), g.latent_dim, device=self.device)
            self._generated = fake = g(z)
            real_logits, fake_logits = d(real), d(fake.detach())
            loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                    + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
            return Step(loss, {"loss_discriminator": loss, "d_real": torch.sigmoid(real_logits).mean()})
        d.requires_grad_(False)   # the generator's loss reaches no discriminator weight
        try:
            logits = d(self._generated)
        finally:
            d.requires_grad_(True)
            self._generated = None
        loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        return Step(loss, {"loss_generator": loss, "d_fake": torch.sigmoid(logits).mean()})

    def validate(self, loop, train_means: dict[str, float]) -> dict:
        from rdvae.fid import frechet_distance_of_images

        config, counters = self.config, loop.counters
        samples = generate(self.gan.generator, config.fid_samples,
                           seed=config.seed + 10_000 + counters["epoch"])
        fid = frechet_distance_of_images(self.features, samples, self.reference)
        return {**{name: train_means.get(name, 0.0)
                   for name in ("loss_discriminator", "loss_generator", "d_real", "d_fake")},
                "fid": fid, "fid_samples": config.fid_samples, "fid_split": config.fid_split,
                "skipped": counters["skipped"], "train_seconds": counters["train_seconds"]}

    def summary(self, loop) -> dict:
        config, counters = self.config, loop.counters
        selection = next(c for c in loop.callbacks if isinstance(c, ModelSelection))
        fids, selected = selection.values, selection.selected_epoch
        return {"status": "done", "kind": KIND, "dataset": config.dataset, "epochs": config.epochs,
                "epochs_trained": counters["epoch"], "selected_epoch": selected,
                "stop_reason": loop.stop_reason or "cap", "fid": fids[selected - 1],
                "fid_by_epoch": fids, "fid_samples": config.fid_samples, "fid_split": config.fid_split,
                "fid_classifier": self.classifier, "skipped_updates": counters["skipped"],
                "train_seconds": counters["train_seconds"], "params": self.gan.num_parameters(),
                "seed": config.seed, "latent_dim": config.latent_dim}

    def describe(self) -> str:
        return f"DCGAN {self.config.dataset}"


GANDiverged = TrainingDiverged   # the GAN's losses kept being non-finite


def gan_loop(config: GANConfig, run: RunDir, progress: bool = True) -> Loop:
    """The one loop set up for a GAN run: the plan, the divergence rule (more than
    MAX_CONSECUTIVE_SKIPS non-finite steps in a row), the collapse rule and metrics.jsonl."""
    plan = GANPlan(config, progress)
    callbacks = [SkipLimits(MAX_CONSECUTIVE_SKIPS, advice="lower the learning rate"),
                 ModelSelection("fid", "min", config.collapse_tolerance, reason="fid rose"), MetricsFile()]
    options = FitOptions(epochs=config.epochs, seed=config.seed, device=plan.device,
                         checkpoint_minutes=config.checkpoint_minutes, progress=progress)
    return Loop(plan, run, options, callbacks)


def train_gan(config: GANConfig | None, out: str | Path, resume: bool = False, progress: bool = True) -> dict:
    """Train a DCGAN into run directory `out` (see the module docstring); returns summary.json's dict.
    resume=True continues an interrupted run from its last finished epoch (config None: the saved
    one; a given config must equal it) and returns a finished run's summary as it is."""
    run = RunDir(out)
    if resume and run.exists:
        saved = GANConfig.from_dict(run.read_config())
        if config is not None and config.validated() != saved:
            diff = {k: (v, getattr(config, k)) for k, v in saved.to_dict().items() if getattr(config, k) != v}
            raise ConfigError(f"cannot resume {run.path} with a different config ({diff}); resume without "
                              "changing settings or train into a new --out")
        config = saved
        if run.read_summary().get("status") == "done":
            return run.read_summary()
    elif run.exists:
        raise ConfigError(f"{run.path} already holds a run; pass resume=True to continue it or choose "
                          "another out")
    elif config is None:
        raise ConfigError(f"nothing to resume in {run.path}: it has no config.json")
    config.validated()
    loop = gan_loop(config, run, progress)
    run.path.mkdir(parents=True, exist_ok=True)
    if resume:
        run.remove_temporary()
    if resume and (run / TRAINER_STATE).exists():
        loop.restore()
    else:
        (run / METRICS).unlink(missing_ok=True)
    run.write_config(config.to_dict())
    return loop.fit()
