"""Bounded resources in training (issue 27): the model's size checked on the meta device before it is
allocated, and a resume after a kill that tore metrics.jsonl's last line."""

import json

import pytest
import torch
from tests.helpers import Interrupt, stop_at

from rdvae.cli import main
from rdvae.data import limits
from rdvae.presets import build_model
from rdvae.rundir import METRICS, RunDir
from rdvae.train import ConfigError, TrainConfig, build_for_config, loop, train

SMALL = dict(dataset="digits", binarize="dynamic", family="mlp", latent_dim=4,
             model={"hidden": [32]}, batch_size=256, eval_batch_size=500)
SHAPE = (1, 8, 8)


@pytest.fixture
def only_meta_builds(monkeypatch):
    """build_model outside the meta device fails the test: the refusal came before any allocation."""
    def guarded(*args, **kwargs):
        assert torch.get_default_device().type == "meta", "the model was built for real"
        return build_model(*args, **kwargs)

    monkeypatch.setattr(loop, "build_model", guarded)


def test_a_model_beyond_the_memory_budget_is_refused_before_it_is_built(monkeypatch, only_meta_builds):
    monkeypatch.setattr(limits, "memory_budget", lambda: 2**34)   # 16 GiB, whatever this machine has
    config = TrainConfig(**{**SMALL, "model": {"hidden": [10**8]}})
    with pytest.raises(ConfigError) as err:
        build_for_config(config, SHAPE)
    small = [build_model("mlp", SHAPE, 4, hidden=[h]) for h in (10, 20)]
    counts = [m.num_parameters() for m in small]
    params = counts[0] + (counts[1] - counts[0]) * (10**8 - 10) // 10   # affine in one hidden layer's width
    buffers = sum(b.numel() * b.element_size() for b in small[0].buffers())   # not widened by hidden
    message = str(err.value)
    assert message.startswith(
        f"the model of family 'mlp' with latent_dim=4 and model options {{'hidden': [100000000]}} has "
        f"{params} parameters: training it needs {16 * params + buffers} bytes (315.9 GiB) for weights, "
        "gradients and Adam's moments, more than this machine's memory (16.0 GiB); lower latent_dim")
    assert "\n" not in message
    with pytest.raises(ConfigError, match="with latent_dim=1000000000 and model options"):
        build_for_config(TrainConfig(**{**SMALL, "latent_dim": 10**9}), SHAPE)


def test_the_check_counts_the_model_it_builds(monkeypatch):
    """A small model is refused under a budget just below its 16 bytes a parameter, built at it."""
    torch.manual_seed(0)
    reference = build_model("mlp", SHAPE, 4, hidden=[32])
    need = 16 * reference.num_parameters() + sum(b.numel() * b.element_size() for b in reference.buffers())
    config = TrainConfig(**SMALL)
    monkeypatch.setattr(limits, "memory_budget", lambda: need - 1)
    with pytest.raises(ConfigError, match=f"has {reference.num_parameters()} parameters: training it needs "
                                          f"{need} bytes"):
        build_for_config(config, SHAPE)
    monkeypatch.setattr(limits, "memory_budget", lambda: need)
    assert build_for_config(config, SHAPE).num_parameters() == reference.num_parameters()


@pytest.mark.parametrize("family", ["mlp", "mlp-v", "mlp+--"])   # mlp+-- cannot be built on meta
def test_the_real_build_is_bit_identical_and_leaves_the_rng_as_before(family):
    config = TrainConfig(**{**SMALL, "family": family})
    torch.manual_seed(0)
    expected = build_model(family, SHAPE, 4, hidden=[32]).state_dict()
    after = torch.get_rng_state()
    torch.manual_seed(0)
    built = build_for_config(config, SHAPE).state_dict()
    assert torch.equal(torch.get_rng_state(), after)
    assert built.keys() == expected.keys() and all(torch.equal(built[k], expected[k]) for k in built)


def test_cli_refuses_a_huge_model_in_one_line(monkeypatch, only_meta_builds, tmp_path, capsys):
    monkeypatch.setattr(limits, "memory_budget", lambda: 2**34)
    code = main(["train", "--dataset", "digits", "--binarize", "dynamic", "--set", "model.hidden=[100000000]",
                 "--out", str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "rdvae train: error: the model of family 'mlp' with latent_dim=" in err
    assert "more than this machine's memory (16.0 GiB)" in err


def test_resume_repairs_a_torn_last_metrics_line(tmp_path):
    config = TrainConfig(**SMALL, epochs=3, checkpoint_minutes=0.0)
    full = train(config, tmp_path / "full", progress=False)
    with pytest.raises(Interrupt):   # 6 steps an epoch: killed in epoch 3, two records written
        train(config, tmp_path / "cut", progress=False, on_step=stop_at(14))
    metrics = tmp_path / "cut" / METRICS
    with open(metrics, "a") as fh:
        fh.write('{"epoch": 3, "ra')   # a kill during an append
    with pytest.warns(UserWarning, match=r"metrics.jsonl: skipped its last line '\{\"epoch\": 3, \"ra'"):
        resumed = train(None, tmp_path / "cut", resume=True, progress=False)
    assert resumed["status"] == "done" and resumed["elbo"] == full["elbo"]
    lines = metrics.read_text().splitlines()
    records = [json.loads(line) for line in lines]   # every line whole again
    assert [r["epoch"] for r in records] == [1, 2, 3]
    untimed = [{k: v for k, v in r.items() if k != "train_seconds"} for r in records]
    assert untimed == [{k: v for k, v in r.items() if k != "train_seconds"}
                       for r in RunDir(tmp_path / "full").read_metrics()]


def test_resume_refuses_a_damaged_metrics_line_before_the_last(tmp_path):
    config = TrainConfig(**SMALL, epochs=3, checkpoint_minutes=0.0)
    with pytest.raises(Interrupt):
        train(config, tmp_path / "cut", progress=False, on_step=stop_at(14))
    metrics = tmp_path / "cut" / METRICS
    first, second = metrics.read_text().splitlines()
    metrics.write_text(first[:20] + "\n" + second + "\n")
    with pytest.raises(ConfigError, match=rf"^{metrics} line 1 is not a JSON object \("):
        train(None, tmp_path / "cut", resume=True, progress=False)
