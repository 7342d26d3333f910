"""The default FID feature network: a small convolutional classifier that rdvae trains on a
dataset's training split and caches as safetensors, with its test accuracy in the metadata.

Features are the 128 ReLU units before the class logits. Scores made with these features are
comparable with each other (same dataset, same cached network), not with published FIDs, which
use Inception features (`rdvae.fid.inception` takes such a network when you have it locally).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..data import load_dataset
from ..device import seeded
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


def train_classifier(train_x: Tensor, train_labels: Tensor, epochs: int = 2, batch_size: int = 128,
                     lr: float = 1e-3, seed: int = 0, progress: bool = True) -> FeatureClassifier:
    """Adam on the cross-entropy over the training split, `epochs` passes in shuffled batches."""
    classes = int(train_labels.max()) + 1
    with seeded(seed):
        net = FeatureClassifier(train_x.shape[1:], classes)
        optimizer = torch.optim.Adam(net.parameters(), lr=lr)
        steps = math.ceil(len(train_x) / batch_size)
        net.train()
        with tqdm(total=epochs * steps, disable=not progress, desc="FID feature classifier",
                  unit="step") as bar:
            for _ in range(epochs):
                order = torch.randperm(len(train_x))
                for b in range(steps):
                    idx = order[b * batch_size:(b + 1) * batch_size]
                    loss = F.cross_entropy(net(train_x[idx]), train_labels[idx].long())
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    bar.update(1)
    return net.eval()


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
    if not path.exists():
        net = train_classifier(ds.train, ds.labels["train"], epochs=epochs, seed=seed, progress=progress)
        meta = {"dataset": dataset, "data_options": options, "architecture": ARCHITECTURE, "epochs": epochs,
                "seed": seed, "feature_dim": FEATURES,
                "test_accuracy": accuracy(net, ds.test, ds.labels["test"])}
        folder.mkdir(parents=True, exist_ok=True)
        save_tensors(path, dict(net.state_dict()), meta)
    # always the network as read from the file: features are then the same to the last bit whether the
    # classifier was trained in this call or an earlier one (a freshly trained module's tensors can take
    # other kernels), which resumed runs rely on
    tensors, meta = load_tensors(path)
    net = FeatureClassifier(ds.event_shape, int(ds.labels["train"].max()) + 1)
    net.load_state_dict(tensors)
    return net.eval(), meta
