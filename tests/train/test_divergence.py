"""A run whose figures are not finite, or that skipped too many updates, ends "diverged", never "done"."""


import pytest
from tests.helpers import NanAt

from rdvae.cli import main
from rdvae.rundir import RunDir
from rdvae.train import TrainConfig, TrainingDiverged, train

SMALL = dict(dataset="digits", binarize="dynamic", family="mlp", latent_dim=4, model={"hidden": [32]},
             batch_size=256, eval_batch_size=500)


def test_a_huge_learning_rate_diverges_with_a_clean_error_and_no_done(tmp_path, capsys):
    code = main(["train", "--dataset", "digits", "--binarize", "dynamic", "--lr", "1e6", "--epochs", "3",
                 "--out", str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1
    summary = RunDir(tmp_path / "r").read_summary()
    assert summary["status"] == "diverged" and summary["error"] in err


def test_too_many_skipped_updates_end_diverged_with_the_checkpoint_kept(tmp_path):
    config = TrainConfig(**SMALL, epochs=2, max_skipped_fraction=0.25)
    with pytest.raises(TrainingDiverged, match=r"6 of 12 updates were skipped \(50%"):
        train(config, tmp_path / "r", progress=False, objective=NanAt(lambda s: s % 2 == 0))
    run = RunDir(tmp_path / "r")
    assert run.read_summary()["status"] == "diverged"
    assert (run / "trainer_state.safetensors").exists() and len(run.read_metrics()) == 2
    # within the fraction: done
    summary = train(TrainConfig(**SMALL, epochs=2, max_skipped_fraction=0.5), tmp_path / "ok",
                    progress=False, objective=NanAt(lambda s: s % 2 == 0))
    assert summary["status"] == "done" and summary["skipped_updates"] == 6


@pytest.mark.parametrize("value", [-0.1, 1.5, "half", None])
def test_the_fraction_is_validated(value):
    with pytest.raises(ValueError, match="max_skipped_fraction"):
        TrainConfig(max_skipped_fraction=value).validated()
