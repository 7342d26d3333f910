"""The DCGAN trainer: run directory, exact resume, and the mode-collapse guard."""

import pytest
import torch
from tests.helpers import Interrupt, kill_at

from rdvae.errors import ConfigError
from rdvae.rundir import WEIGHTS, RunDir, load_tensors
from rdvae.studies.gan_decoder.adversarial import GANConfig, load_gan, train_gan


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RDVAE_CACHE", str(tmp_path / "cache"))


def tiny(**changes) -> GANConfig:
    settings = dict(dataset="digits", data={"pad": 4}, latent_dim=8, ngf=4, ndf=4, epochs=2, batch_size=256,
                    fid_samples=50, classifier_epochs=1, device="cpu")
    return GANConfig(**{**settings, **changes})


def weights(path):
    return load_tensors(RunDir(path) / WEIGHTS)[0]


def test_a_gan_run_writes_the_run_directory_and_resumes_exactly(tmp_path, monkeypatch):
    full = train_gan(tiny(), tmp_path / "full", progress=False)
    assert full["status"] == "done" and full["epochs_trained"] == 2 and full["selected_epoch"] == 2
    metrics = RunDir(tmp_path / "full").read_metrics()
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert all(0 < m["d_real"] < 1 and 0 < m["d_fake"] < 1 and m["fid"] > 0 for m in metrics)
    assert full["fid_by_epoch"] == [m["fid"] for m in metrics]

    kill_at(monkeypatch, 8)   # mid-epoch 2 (6 steps an epoch): the last checkpoint is step 8's
    with pytest.raises(Interrupt):
        train_gan(tiny(checkpoint_minutes=0.0), tmp_path / "cut", progress=False)
    assert RunDir(tmp_path / "cut").read_metrics()[-1]["epoch"] == 1
    resumed = train_gan(None, tmp_path / "cut", resume=True, progress=False)
    assert resumed["epochs_trained"] == 2
    assert resumed["fid_by_epoch"] == full["fid_by_epoch"]
    a, b = weights(tmp_path / "full"), weights(tmp_path / "cut")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # a finished run is returned as it is; another config is refused
    assert train_gan(tiny(), tmp_path / "full", resume=True, progress=False) == full
    with pytest.raises(ConfigError, match="cannot resume .* with a different config"):
        train_gan(tiny(lr=1e-3), tmp_path / "full", resume=True, progress=False)
    with pytest.raises(ConfigError, match="already holds a run"):
        train_gan(tiny(), tmp_path / "full", progress=False)


def test_the_guard_keeps_the_epoch_before_the_fid_rose(tmp_path, monkeypatch):
    three = train_gan(tiny(epochs=3), tmp_path / "three", progress=False)
    fids = iter([10.0, 8.0, 8.3, 9.0, 5.0])       # 8.3 is within 5 % of 8.0; 9.0 is not
    monkeypatch.setattr("rdvae.fid.frechet_distance_of_images", lambda *a, **k: next(fids))
    guarded = train_gan(tiny(epochs=5), tmp_path / "guarded", progress=False)
    assert guarded["epochs_trained"] == 4 and guarded["selected_epoch"] == 3
    assert guarded["stop_reason"] == "fid rose" and guarded["fid"] == 8.3
    kept = [m["kept"] for m in RunDir(tmp_path / "guarded").read_metrics()]
    assert kept == [True, True, True, False]
    # the weights on disk are epoch 3's: those of the same run capped at 3 epochs
    a, b = weights(tmp_path / "guarded"), weights(tmp_path / "three")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert three["selected_epoch"] == 3 and three["stop_reason"] == "cap"
    gan, config = load_gan(tmp_path / "guarded")
    assert config.epochs == 5 and not gan.training


def test_bad_settings_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="collapse_tolerance must be a number >= 0, got -1"):
        tiny(collapse_tolerance=-1).validated()
    with pytest.raises(ConfigError, match="adam_beta1 must be below 1, got 1.0"):
        tiny(adam_beta1=1.0).validated()
    with pytest.raises(ConfigError, match="lr must be a positive number, got 0"):
        tiny(lr=0).validated()
    with pytest.raises(ConfigError, match="kind must be one of gan"):
        tiny(kind="vae").validated()
    with pytest.raises(ConfigError, match="fid_samples must be an integer >= 2, got 1"):
        tiny(fid_samples=1).validated()
    with pytest.raises(ConfigError, match="inception must be null or the path of a TorchScript file, got 5"):
        tiny(inception=5).validated()
    with pytest.raises(ConfigError, match="dataset must be a dataset name or path, got 5"):
        tiny(dataset=5).validated()
    with pytest.raises(ConfigError, match="square images of side 16, 32, 64"):
        train_gan(tiny(data={}), tmp_path / "eight", progress=False)       # digits are 8 x 8
    with pytest.raises(ConfigError, match="unknown GAN config field"):
        GANConfig.from_dict({"datset": "digits"})


def test_a_gan_run_is_not_mistaken_for_a_vae_run(tmp_path):
    from rdvae.train import load_run

    train_gan(tiny(epochs=1), tmp_path / "gan", progress=False)
    with pytest.raises(ConfigError, match="this is a 'gan' run, not a VAE run"):
        load_run(tmp_path / "gan")
