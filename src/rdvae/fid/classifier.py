"""The default FID feature network: a small convolutional classifier that rdvae trains on a
dataset's training split and caches as safetensors, with its test accuracy in the metadata.

Features are the 128 ReLU units before the class logits. Scores made with these features are
comparable with each other (same dataset, same cached network), not with published FIDs, which
use Inception features (`rdvae.fid.inception` takes such a network when you have it locally).
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import load_dataset
from ..device import seeded
from ..engine import FitOptions, MetricsFile, Plan, Step, fit
from ..engine.optimizers import build_optimizer
from ..rundir import load_tensors, save_tensors

ARCHITECTURE = "conv16-conv32-fc128-v1"
FEATURES = 128


class FeatureClassifier(nn.Module):
    """Conv(16,3)-ReLU-MaxPool2, Conv(32,3)-ReLU-MaxPool2, Linear(128)-ReLU (features), Linear(classes)."""

    def __init__(self, event_shape, classes: int = 10):
        super().__init__()
        channels, height, width = event_shape
        self.event_shape, self.classes = tuple(event_shape), classes
        self.convs = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        )
        self.hidden = nn.Sequential(nn.Linear(32 * (height // 4) * (width // 4), FEATURES), nn.ReLU())
        self.head = nn.Linear(FEATURES, classes)

    def features(self, x: Tensor) -> Tensor:
        return self.hidden(self.convs(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


@torch.no_grad()
def accuracy(net: FeatureClassifier, x: Tensor, labels: Tensor, batch_size: int = 1000) -> float:
    net.eval()
    correct = sum((net(x[s:s + batch_size]).argmax(1) == labels[s:s + batch_size]).sum().item()
                  for s in range(0, len(x), batch_size))
    return correct / len(x)


class ClassifierPlan(Plan):
    """The feature classifier on the one loop (rdvae.engine): Adam on the cross-entropy over the
    training split, in shuffled batches. The shuffle generator starts from the torch RNG's state after
    the network's initialisation (so that the batches are those torch.randperm would draw)."""

    kind = "classifier"
    shown = ("loss", "accuracy")

    def __init__(self, train_x: Tensor, train_labels: Tensor, batch_size: int = 128, lr: float = 1e-3):
        self.x, self.labels = train_x, train_labels.long()
        self.size, self.lr = batch_size, lr
        self.model = FeatureClassifier(train_x.shape[1:], int(train_labels.max()) + 1)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [build_optimizer("adam", self.model.parameters(), self.lr, {"fused": False})]

    def shuffle_state(self, seed: int) -> Tensor:
        return torch.get_rng_state()

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.x) / self.size)

    def epoch_batches(self, order: torch.Generator, shuffle: torch.Generator, start: int):
        permutation = torch.randperm(len(self.x), generator=order)
        for b in range(start, self.steps_per_epoch()):
            index = permutation[b * self.size:(b + 1) * self.size]
            yield self.x[index], self.labels[index]

    def batch_size(self, batch) -> int:
        return len(batch[0])

    def training_step(self, batch, step: int, index: int) -> Step:
        x, labels = batch
        logits = self.model(x)
        loss = F.cross_entropy(logits, labels)
        return Step(loss, {"loss": loss, "accuracy": (logits.argmax(1) == labels).float().mean()})

    def validate(self, loop, train_means: dict[str, float]) -> dict:
        return {f"train_{name}": value for name, value in train_means.items()}

    def summary(self, loop) -> dict:
        return {"status": "done", "kind": self.kind, "epochs_trained": loop.counters["epoch"],
                "architecture": ARCHITECTURE, "examples": len(self.x)}

    def describe(self) -> str:
        return "FID feature classifier"


def train_classifier(train_x: Tensor, train_labels: Tensor, epochs: int = 2, batch_size: int = 128,
                     lr: float = 1e-3, seed: int = 0, progress: bool = True,
                     run: str | Path | None = None, checkpoint_minutes: float = 10.0) -> FeatureClassifier:
    """Adam on the cross-entropy over the training split, `epochs` passes in shuffled batches, on the
    one loop. run: a folder for its checkpoints (every epoch and every checkpoint_minutes), from which
    an interrupted training resumes exactly (None: nothing written). The caller's RNG state is left
    as it was."""
    with seeded(seed):
        plan = ClassifierPlan(train_x, train_labels, batch_size, lr)
        options = FitOptions(epochs=epochs, seed=seed, device=train_x.device, progress=progress,
                             checkpoint_minutes=checkpoint_minutes)
        fit(plan, run, options, [MetricsFile()], resume=run is not None)
    return plan.model.eval()


def default_cache_folder() -> Path:
    """$RDVAE_CACHE/fid, else ~/.cache/rdvae/fid."""
    root = os.environ.get("RDVAE_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "rdvae") / "fid"


def feature_classifier(dataset: str, cache_folder: str | Path | None = None, epochs: int = 2, seed: int = 0,
                       progress: bool = True, data_root: str | None = None,
                       data_options: dict | None = None) -> tuple[FeatureClassifier, dict]:
    """The cached classifier of `dataset` (grey levels; loaded with the loader's `data_options`, e.g.
    {"pad": 2}), trained on its training split on first use. Returns the network (eval mode) and its
    metadata: dataset, data options, architecture, epochs, seed, test_accuracy (on the test split)."""
    folder = Path(cache_folder) if cache_folder is not None else default_cache_folder()
    options = dict(sorted((data_options or {}).items()))
    tag = "".join(f"-{k}{v}" for k, v in options.items() if k != "root")
    path = folder / f"classifier-{dataset}{tag}-{ARCHITECTURE}-e{epochs}-s{seed}.safetensors"
    ds = load_dataset(dataset, **({"root": data_root} if data_root is not None else {}), **options)
    if ds.labels.get("train") is None or ds.labels.get("test") is None or len(ds.event_shape) != 3:
        raise ValueError(f"the FID classifier needs labelled images; {dataset} has none. Use the grey-level "
                         "dataset the model was trained on (e.g. mnist for binarized MNIST) or pass your "
                         "own feature network")
    if not path.exists():   # trained in a run folder beside it, from which a killed training resumes
        run = path.with_suffix(".run")
        net = train_classifier(ds.train, ds.labels["train"], epochs=epochs, seed=seed, progress=progress,
                               run=run)
        meta = {"dataset": dataset, "data_options": options, "architecture": ARCHITECTURE, "epochs": epochs,
                "seed": seed, "feature_dim": FEATURES,
                "test_accuracy": accuracy(net, ds.test, ds.labels["test"])}
        folder.mkdir(parents=True, exist_ok=True)
        save_tensors(path, dict(net.state_dict()), meta)
        shutil.rmtree(run, ignore_errors=True)
    # always the network as read from the file: features are then the same to the last bit whether the
    # classifier was trained in this call or an earlier one (a freshly trained module's tensors can take
    # other kernels), which resumed runs rely on
    tensors, meta = load_tensors(path)
    net = FeatureClassifier(ds.event_shape, int(ds.labels["train"].max()) + 1)
    net.load_state_dict(tensors)
    return net.eval(), meta
