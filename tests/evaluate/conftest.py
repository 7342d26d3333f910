"""A tiny trained run shared by the evaluation tests of a module (trained once per module, copied per
test so that a test may write into it)."""

import shutil

import pytest

from rdvae.train import TrainConfig, train

TINY = dict(dataset="digits", binarize="static", family="mlp", latent_dim=2, model={"hidden": [16]},
            batch_size=256, eval_batch_size=500, epochs=1)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "run"
    train(TrainConfig(**TINY), out, progress=False)
    return out


@pytest.fixture
def run(trained_run, tmp_path):
    shutil.copytree(trained_run, tmp_path / "run")
    return tmp_path / "run"
