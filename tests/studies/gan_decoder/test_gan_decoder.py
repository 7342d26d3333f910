"""rdvae repro gan-decoder at smoke scale: three run directories per dataset, the stage-1 decoder
is the GAN's generator untouched, stage 2 moves it, and the table, claims and panel are written."""

import math

import pytest
import torch

from rdvae.cli import main
from rdvae.registry import STUDIES
from rdvae.studies.gan_decoder import study as gan_decoder
from rdvae.studies.gan_decoder.adversarial import load_gan
from rdvae.train import load_run


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RDVAE_CACHE", str(tmp_path / "cache"))


def test_gan_decoder_smoke(tmp_path):
    assert STUDIES["gan-decoder"].run is gan_decoder.run
    result = gan_decoder.run("smoke", tmp_path / "out", progress=False)
    digits = result["datasets"]["digits"]
    assert digits["status"] == "done", digits
    rows = {row["stage"]: row for row in digits["rows"]}
    assert set(rows) == {"ground truth (GAN)", "stage1-encoder", "stage2-joint"}
    for stage in gan_decoder.STAGES:
        for key in ("rate", "distortion", "elbo", "fid_ground_truth", "rmse_ground_truth", "fid_samples",
                    "fid_reconstructions", "elbo_ground_truth"):
            assert math.isfinite(rows[stage][key]), (stage, key)
        row = rows[stage]
        assert row["elbo"] == pytest.approx(-(row["rate"] + row["distortion"]), rel=1e-5)
    folder = tmp_path / "out" / "digits"
    gan, _ = load_gan(folder / "gan")
    one = load_run(folder / "stage1-encoder", device="cpu").model
    two = load_run(folder / "stage2-joint", device="cpu").model
    generator = gan.generator.state_dict()
    assert all(torch.equal(one.decoder.trunk.state_dict()[k], v) for k, v in generator.items())
    assert not all(torch.equal(two.decoder.trunk.state_dict()[k], v) for k, v in generator.items())
    holds = [c["holds"] for c in digits["claims"]]
    assert len(holds) == 3 and set(holds) <= {True, False}
    assert (folder / "redecoded.png").exists()
    assert "| claim | paper (CelebA) | here | holds? |" in (folder / "results.md").read_text()
    # a second call finds every run finished and scores again, to the same numbers
    again = gan_decoder.run("smoke", tmp_path / "out", progress=False)
    assert again["datasets"]["digits"]["rows"] == digits["rows"]


def test_repro_options_are_checked(tmp_path, capsys):
    assert main(["repro", "gan-decoder", "--scale", "paper", "--out", str(tmp_path / "p")]) == 2
    assert "pass the image folder with --dataset" in capsys.readouterr().err
    assert main(["repro", "gan-decoder", "--scale", "smoke", "--inception", str(tmp_path / "none.pt"),
                 "--out", str(tmp_path / "q")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["repro", "elbo-surgery", "--scale", "smoke", "--dataset", "mnist",
                 "--out", str(tmp_path / "r")]) == 2
    assert "--dataset does not apply" in capsys.readouterr().err


def test_a_folder_of_unlabelled_images_needs_a_feature_network(tmp_path):
    """The own-data path of the paper scale: a folder of images, resized to the scale's side; FID then
    needs a TorchScript network (a stand-in here), the classifier needing labels."""
    from PIL import Image

    from rdvae.studies.gan_decoder.adversarial import GANConfig, fid_features

    folder = tmp_path / "faces"
    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(40):
        pixels = (torch.rand(20, 20, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    assert gan_decoder.data_options(str(folder), gan_decoder.SCALES["smoke"]) == {"resize": [16, 16]}
    config = GANConfig(dataset=str(folder), data={"resize": [16, 16]})
    with pytest.raises(ValueError, match="needs labelled images.*TorchScript Inception"):
        fid_features(config)

    class Mean(torch.nn.Module):
        def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
            return torch.stack([x.mean((1, 2, 3)), x.std((1, 2, 3))], 1)

    path = tmp_path / "features.pt"
    torch.jit.save(torch.jit.script(Mean()), str(path))
    net, info = fid_features(GANConfig(dataset=str(folder), data={"resize": [16, 16]}, inception=str(path)))
    assert info["features"].startswith("TorchScript")
    assert net.features(torch.rand(3, 3, 16, 16)).shape == (3, 2)


def test_the_claims_read_the_direction_from_stage_1_to_stage_2():
    rows = [{"stage": "ground truth (GAN)", "fid_samples": 5.0},
            {"stage": "stage1-encoder", "elbo": -100.0, "fid_ground_truth": 20.0, "fid_samples": 6.0},
            {"stage": "stage2-joint", "elbo": 50.0, "fid_ground_truth": 2.0, "fid_samples": 90.0}]
    claims = gan_decoder.direction_claims(rows)
    assert [c["holds"] for c in claims] == [True, False, True]   # ELBO up, FID(gt) down, FID(samples) up
    assert claims[0]["here"] == "-100.0 -> 50.0" and claims[0]["paper"] == "-19072.7 -> 5137.17"
    assert [c["holds"] for c in gan_decoder.direction_claims(rows[:2])] == [None] * 3
