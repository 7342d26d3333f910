"""Training a DCGAN (components.dcgan) into a run directory, with the mode-collapse guard of the
GAN-as-decoder experiment: after every epoch, the FID of generated samples against held-out images;
the run keeps the checkpoint of the epoch before the first epoch whose FID is worse (by more than
`collapse_tolerance`) and stops there ("select a checkpoint one epoch before mode collapse", [Re]
section 4, after Brock et al. 2019).

The loss is the non-saturating one of the PyTorch DCGAN tutorial: the discriminator minimises
BCE(D(x), 1) + BCE(D(G(z)), 0) (real and fake in separate batches), then the generator minimises
BCE(D(G(z)), 1), both with Adam (lr 2e-4, betas (0.5, 0.999)). One Adam holds both networks (two
parameter groups); each update steps only the network whose gradients it computed, so this is the
tutorial's two optimisers, saved and restored as one.

The run directory is the VAE runs' (rundir): config.json (a GANConfig, "kind": "gan"), metrics.jsonl
(one line per epoch: losses, D(x), D(G(z)), FID), summary.json, model.safetensors (generator and
discriminator of the selected epoch) and trainer_state.safetensors, written atomically after every
epoch; `train_gan(..., resume=True)` continues an interrupted run from its last finished epoch.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..components.dcgan import GAN, NDF, NGF, dcgan
from ..data import load_dataset
from ..device import SEED_MAX, check_device, resolve_device, seeded
from ..errors import ConfigError
from ..rundir import METRICS, TRAINER_STATE, WEIGHTS, RunDir, load_tensors, save_tensors
from .checkpoint import load_checkpoint, save_checkpoint

KIND = "gan"
MAX_CONSECUTIVE_SKIPS = 100


@dataclass
class GANConfig:
    """Everything that rebuilds and re-runs a GAN run."""

    dataset: str = "mnist"
    data: dict = field(default_factory=dict)   # the dataset loader's options (e.g. pad=2)
    latent_dim: int = 100
    ngf: int = NGF
    ndf: int = NDF
    epochs: int = 5                 # the cap; the guard may stop earlier
    batch_size: int = 128
    lr: float = 2e-4
    adam_beta1: float = 0.5
    adam_beta2: float = 0.999
    seed: int = 0
    device: str = "auto"
    fid_samples: int = 2000         # generated images per epoch for the guard
    fid_split: str = "valid"        # the held-out images they are compared with
    collapse_tolerance: float = 0.05   # an FID more than this fraction above the previous epoch's stops
    classifier_epochs: int = 2      # of the FID feature classifier (rdvae.fid.feature_classifier)
    inception: str | None = None    # a TorchScript feature network for the FID instead (rdvae.fid.inception)
    kind: str = KIND

    def validated(self) -> GANConfig:
        def positive_int(name, low=1):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")

        for name in ("latent_dim", "ngf", "ndf", "epochs", "batch_size", "classifier_epochs"):
            positive_int(name)
        positive_int("fid_samples", 2)
        positive_int("seed", 0)
        if self.seed > SEED_MAX:
            raise ConfigError(f"seed must be at most {SEED_MAX}, got {self.seed}")
        for name, low, high in (("lr", 0, math.inf), ("adam_beta1", 0, 1), ("adam_beta2", 0, 1),
                                ("collapse_tolerance", 0, math.inf)):
            value = getattr(self, name)
            ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or not (low <= value < high) or (name == "lr" and value <= 0):
                extra = " and > 0" if name == "lr" else ""
                raise ConfigError(f"{name} must be a number in [{low}, {high}){extra}, got {value!r}")
        if self.fid_split not in ("train", "valid", "test"):
            raise ConfigError(f"fid_split must be train, valid or test, got {self.fid_split!r}")
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ConfigError(f"dataset must be a dataset name or path, got {self.dataset!r}")
        if self.inception is not None and not isinstance(self.inception, str):
            raise ConfigError("inception must be the path of a TorchScript file or null, "
                              f"got {self.inception!r}")
        if self.inception is not None and not Path(self.inception).is_file():
            raise ConfigError(f"inception: no TorchScript feature network at {self.inception!r}; give the "
                              "file (rdvae downloads no weights) or null for rdvae's classifier features")
        if not isinstance(self.data, dict):
            raise ConfigError(f"data must be a mapping of the loader's options, got {self.data!r}")
        if self.kind != KIND:
            raise ConfigError(f"a GAN config has kind {KIND!r}, got {self.kind!r}")
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
    from ..fid import TorchScriptFeatures, feature_classifier

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


class GANTrainer:
    def __init__(self, config: GANConfig, run: RunDir, progress: bool = True):
        from ..fid import image_statistics

        self.config, self.run, self.progress = config, run, progress
        self.device = resolve_device(config.device)
        ds = load_dataset(config.dataset, **config.data)
        if ds.binary or len(ds.event_shape) != 3:
            raise ConfigError(f"a DCGAN needs grey-level or colour images; {ds.describe()}")
        self.dataset = ds
        self.gan = build_gan(config, ds.event_shape).to(self.device)
        g, d = self.gan.generator, self.gan.discriminator
        self.optimizer = torch.optim.Adam([{"params": list(g.parameters()), "name": "generator"},
                                           {"params": list(d.parameters()), "name": "discriminator"}],
                                          lr=config.lr, betas=(config.adam_beta1, config.adam_beta2))
        self.train_x = ds.train.to(self.device)
        self.features, self.classifier = fid_features(config, progress)
        self.reference = image_statistics(self.features, ds.split(config.fid_split))
        self.shuffle = torch.Generator().manual_seed(config.seed + 1)
        self.steps_per_epoch = math.ceil(len(self.train_x) / config.batch_size)
        self.counters = {"epoch": 0, "step": 0, "skipped": 0, "consecutive_skips": 0, "train_seconds": 0.0,
                         "fid": [], "selected_epoch": None, "stop_reason": None}

    # -- checkpoints ---------------------------------------------------------------------------
    def checkpoint(self) -> None:
        rng = {"torch": torch.get_rng_state(), "shuffle": self.shuffle.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        save_checkpoint(self.run, self.gan, self.optimizer, self.counters, rng)

    def restore(self) -> None:
        self.counters, rng = load_checkpoint(self.run, self.gan, self.optimizer, self.device)
        torch.set_rng_state(rng["torch"])
        self.shuffle.set_state(rng["shuffle"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        epoch = self.counters["epoch"]
        self.run.keep_metrics(m for m in self.run.read_metrics() if m["epoch"] <= epoch)

    # -- one update ----------------------------------------------------------------------------
    def step(self, real: torch.Tensor) -> torch.Tensor | None:
        """One discriminator and one generator update; [loss_D, loss_G, D(x), D(G(z))] or None when
        a loss was not finite (that update is skipped)."""
        g, d, optimizer = self.gan.generator, self.gan.discriminator, self.optimizer
        z = torch.randn(len(real), g.latent_dim, device=self.device)
        fake = g(z)
        real_logits, fake_logits = d(real), d(fake.detach())
        loss_d = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                  + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
        optimizer.zero_grad(set_to_none=True)
        if not torch.isfinite(loss_d):
            return None
        loss_d.backward()
        optimizer.step()                       # only the discriminator has gradients
        d.requires_grad_(False)
        try:
            logits = d(fake)
            loss_g = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
            optimizer.zero_grad(set_to_none=True)
            if not torch.isfinite(loss_g):
                return None
            loss_g.backward()
            optimizer.step()                   # only the generator has gradients
        finally:
            d.requires_grad_(True)
        return torch.stack([loss_d.detach(), loss_g.detach(), torch.sigmoid(real_logits).mean().detach(),
                            torch.sigmoid(logits).mean().detach()])

    def run_epoch(self, bar, started: float) -> None:
        from ..fid import frechet_distance_of_images

        config, counters = self.config, self.counters
        self.gan.train()
        order = torch.randperm(len(self.train_x), generator=self.shuffle).to(self.device)
        sums, seen = torch.zeros(4, dtype=torch.float64, device=self.device), 0
        for b in range(self.steps_per_epoch):
            real = self.train_x[order[b * config.batch_size:(b + 1) * config.batch_size]]
            figures = self.step(real)
            counters["step"] += 1
            bar.update(1)
            if figures is None:
                counters["skipped"] += 1
                counters["consecutive_skips"] += 1
                if counters["consecutive_skips"] > MAX_CONSECUTIVE_SKIPS:
                    raise GANDiverged(f"{counters['consecutive_skips']} consecutive non-finite GAN losses at "
                                      f"step {counters['step']}; the last good checkpoint in {self.run.path} "
                                      "is kept. Lower the learning rate")
                continue
            counters["consecutive_skips"] = 0
            sums += figures.double() * len(real)
            seen += len(real)
            if b % 10 == 0:
                loss_d, loss_g, d_real, d_fake = (sums / max(seen, 1)).tolist()
                bar.set_postfix(loss_D=f"{loss_d:.3f}", loss_G=f"{loss_g:.3f}", refresh=False)
        epoch = counters["epoch"] + 1
        samples = generate(self.gan.generator, config.fid_samples, seed=config.seed + 10_000 + epoch)
        fid = frechet_distance_of_images(self.features, samples, self.reference)
        loss_d, loss_g, d_real, d_fake = (sums / max(seen, 1)).tolist()
        previous = counters["fid"][-1] if counters["fid"] else None
        collapsed = previous is not None and fid > (1 + config.collapse_tolerance) * previous
        counters.update(epoch=epoch, train_seconds=time.monotonic() - started, fid=[*counters["fid"], fid])
        self.run.append_metrics({"epoch": epoch, "step": counters["step"], "loss_discriminator": loss_d,
                                 "loss_generator": loss_g, "d_real": d_real, "d_fake": d_fake, "fid": fid,
                                 "fid_samples": config.fid_samples, "fid_split": config.fid_split,
                                 "skipped": counters["skipped"], "train_seconds": counters["train_seconds"],
                                 "kept": not collapsed})
        if collapsed:   # this epoch's weights are not saved: the files keep the previous epoch's
            counters.update(selected_epoch=epoch - 1, stop_reason="fid rose")
            self.save_counters_only()
        else:
            counters["selected_epoch"] = epoch
            if epoch >= config.epochs:
                counters["stop_reason"] = "cap"
            self.checkpoint()

    def save_counters_only(self) -> None:
        """Record the stop in the checkpoint's counters without replacing its weights."""
        tensors, meta = load_tensors(self.run / TRAINER_STATE)
        meta["counters"] = self.counters
        save_tensors(self.run / TRAINER_STATE, tensors, meta)

    def fit(self) -> dict:
        config, counters = self.config, self.counters
        total = self.steps_per_epoch * config.epochs
        started = time.monotonic() - counters["train_seconds"]
        with tqdm(total=total, initial=counters["step"], disable=not self.progress, unit="step",
                  dynamic_ncols=True, desc=f"DCGAN {config.dataset}") as bar:
            while counters["stop_reason"] is None and counters["epoch"] < config.epochs:
                self.run_epoch(bar, started)
        fids = counters["fid"]
        selected = counters["selected_epoch"]
        summary = {"status": "done", "kind": KIND, "dataset": config.dataset, "epochs": config.epochs,
                   "epochs_trained": counters["epoch"], "selected_epoch": selected,
                   "stop_reason": counters["stop_reason"] or "cap", "fid": fids[selected - 1],
                   "fid_by_epoch": fids, "fid_samples": config.fid_samples, "fid_split": config.fid_split,
                   "fid_classifier": self.classifier, "skipped_updates": counters["skipped"],
                   "train_seconds": counters["train_seconds"], "params": self.gan.num_parameters(),
                   "seed": config.seed, "latent_dim": config.latent_dim}
        return self.run.update_summary(**summary)


class GANDiverged(RuntimeError):
    """The GAN's losses kept being non-finite."""


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
    trainer = GANTrainer(config, run, progress)
    run.path.mkdir(parents=True, exist_ok=True)
    if resume:
        run.remove_temporary()
    if resume and (run / TRAINER_STATE).exists():
        trainer.restore()
    else:
        (run / METRICS).unlink(missing_ok=True)
    run.write_config(config.to_dict())
    try:
        return trainer.fit()
    except GANDiverged as err:
        run.update_summary(status="diverged", error=str(err))
        raise
