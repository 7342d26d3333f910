"""A train split streamed from a torch Dataset trains exactly like the same data in memory."""

import math

import pytest
import torch
from torch.utils.data import Dataset as TorchDataset

from rdvae.data import DataError
from rdvae.data.streaming import TrainSplit, from_torch_dataset
from rdvae.train import TrainConfig, load_run, train


class Rows(TorchDataset):
    """A map-style dataset that counts the items read (a stand-in for files on disk)."""

    def __init__(self, x: torch.Tensor, labelled: bool = False):
        self.x, self.labelled, self.reads = x, labelled, 0

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        self.reads += 1
        return (self.x[i].numpy(), 0) if self.labelled else self.x[i]


def data(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 4, 4, generator=g).round()


def test_streamed_batches_equal_the_in_memory_slices():
    x = data()
    streamed = from_torch_dataset("s", Rows(x, labelled=True), test=Rows(data(50, 1)))
    in_memory = from_torch_dataset("s", Rows(x), test=Rows(data(50, 1)), stream=False)
    assert streamed.streamed and not in_memory.streamed and streamed.binary
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(3))
    a = list(TrainSplit(streamed, torch.device("cpu")).batches(order, 64, start=2))
    b = list(TrainSplit(in_memory, torch.device("cpu")).batches(order, 64, start=2))
    assert len(a) == len(b) == math.ceil(300 / 64) - 2
    for u, v in zip(a, b, strict=True):
        torch.testing.assert_close(u, v, rtol=0, atol=0)


def test_a_streamed_run_equals_the_in_memory_run(tmp_path):
    x, test = data(), data(60, 1)
    config = dict(dataset="stream-test", family="mlp", latent_dim=2, model={"hidden": [8]}, epochs=2,
                  batch_size=64, eval_batch_size=100)
    source = Rows(x)
    streamed = train(TrainConfig(**config), tmp_path / "s", progress=False,
                     dataset=from_torch_dataset("stream-test", source, test=Rows(test)))
    assert source.reads >= 2 * len(x)   # every epoch read its batches from the source
    memory = train(TrainConfig(**config), tmp_path / "m", progress=False,
                   dataset=from_torch_dataset("stream-test", Rows(x), test=Rows(test), stream=False))
    for key in ("rate", "distortion", "elbo", "mutual_info"):
        assert streamed[key] == memory[key], key
    # reloading needs the dataset (it is not registered): given, it works
    reloaded = load_run(tmp_path / "s", dataset=from_torch_dataset("stream-test", Rows(x), test=Rows(test)))
    assert reloaded.config.dataset == "stream-test"


def test_the_train_split_of_a_streamed_set_is_not_evaluated_whole(tmp_path):
    ds = from_torch_dataset("stream-test", Rows(data()), test=Rows(data(20, 1)))
    config = TrainConfig(dataset="stream-test", family="mlp", latent_dim=2, model={"hidden": [8]}, epochs=1,
                         final_split="train")
    with pytest.raises(ValueError, match="streamed"):
        train(config, tmp_path / "r", progress=False, dataset=ds)


def test_a_dataset_object_must_carry_the_configs_name(tmp_path):
    ds = from_torch_dataset("other", Rows(data()), test=Rows(data(20, 1)))
    with pytest.raises(ValueError, match="named 'other' but the config's dataset is 'stream-test'"):
        train(TrainConfig(dataset="stream-test", epochs=1), tmp_path / "r", progress=False, dataset=ds)


def test_bad_sources_are_clear_errors():
    with pytest.raises(DataError, match="test split is needed"):
        from_torch_dataset("s", Rows(data()))
    with pytest.raises(DataError, match="shape"):
        from_torch_dataset("s", Rows(data()), test=Rows(torch.zeros(5, 3)))
