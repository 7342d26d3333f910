"""What a resume repairs, and a dataset object given with a config that names its file."""

import numpy as np
import pytest
import torch

from rdvae.cli import main
from rdvae.data import load_dataset
from rdvae.rundir import TRAINER_STATE, WEIGHTS, RunDir, load_tensors
from rdvae.train import TrainConfig, load_run, train

TINY = dict(dataset="digits", binarize="static", family="mlp", latent_dim=2, model={"hidden": [16]},
            batch_size=256, eval_batch_size=500, epochs=1)


def test_resume_rewrites_a_damaged_model_file_of_a_finished_run_from_its_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    summary = train(TrainConfig(**TINY), run, progress=False)
    weights = {k: v.clone() for k, v in load_tensors(run / WEIGHTS)[0].items()}   # not a view of the file
    (run / WEIGHTS).write_bytes((run / WEIGHTS).read_bytes()[:100])   # truncated
    assert main(["eval", str(run), "--no-progress"]) == 2
    assert f"rdvae train --resume --out {run}" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(run), "--no-progress"]) == 0
    assert "rewrote" in capsys.readouterr().err
    repaired, _ = load_tensors(run / WEIGHTS)
    assert repaired.keys() == weights.keys()
    assert all(torch.equal(repaired[k], weights[k]) for k in weights)
    assert load_run(run, device="cpu").config.epochs == 1 and RunDir(run).read_summary() == summary

    (run / WEIGHTS).unlink()   # lost altogether: the same
    assert train(None, run, resume=True, progress=False) == summary and (run / WEIGHTS).exists()


def test_a_damaged_checkpoint_says_it_cannot_be_rewritten(tmp_path, capsys):
    run = tmp_path / "run"
    train(TrainConfig(**TINY), run, progress=False)
    (run / TRAINER_STATE).write_bytes(b"junk")
    (run / WEIGHTS).write_bytes(b"junk")
    assert main(["train", "--resume", "--out", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint is lost" in err and err.count("\n") == 1


def test_a_dataset_object_matches_a_config_naming_its_file_by_a_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.savez("bars.npz", x=(rng.random((60, 8)) > 0.5).astype(np.float32))
    config = TrainConfig(dataset="bars.npz", family="mlp", latent_dim=2, epochs=1, batch_size=32,
                         binarize=None)
    summary = train(config, "out", dataset=load_dataset("bars.npz"), progress=False)
    assert summary["status"] == "done"
    with pytest.raises(Exception, match="named"):   # a different file is still refused
        np.savez("other.npz", x=np.zeros((60, 8), np.float32))
        train(TrainConfig(dataset="bars.npz", epochs=1, binarize=None), "out2",
              dataset=load_dataset("other.npz"), progress=False)
