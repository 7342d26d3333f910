"""rdvae repro gan-decoder at smoke scale: the GAN and both stages per dataset, the stage-1 decoder is
the GAN's generator untouched, stage 2 moves it, the stages run one by one give the numbers of one run
through, stage 2 reads no real image, and the table, claims and panel are written."""

import math
import sys

import pytest
import torch

from rdvae.cli import main
from rdvae.errors import ConfigError
from rdvae.registry import STUDIES
from rdvae.rundir import RunDir
from rdvae.studies.gan_decoder import study as gan_decoder
from rdvae.studies.gan_decoder.adversarial import load_gan
from rdvae.studies.gan_decoder.stages import load_stage

TIMINGS = ("train_seconds", "score_seconds", "wall_seconds")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RDVAE_CACHE", str(tmp_path / "cache"))


def untimed(rows):
    return [{k: v for k, v in row.items() if k not in TIMINGS} for row in rows]


def test_gan_decoder_smoke(tmp_path):
    assert STUDIES["gan-decoder"].run is gan_decoder.run
    result = gan_decoder.run("smoke", tmp_path / "out", progress=False)
    digits = result["datasets"]["digits"]
    assert digits["status"] == "done", digits
    rows = {row["stage"]: row for row in digits["rows"]}
    assert set(rows) == {gan_decoder.GAN_ROW, "stage1-encoder", "stage2-joint"}
    for stage in ("stage1-encoder", "stage2-joint"):
        row = rows[stage]
        for key in ("rate", "distortion", "elbo", "elbo_se", "conditional_nll", "rmse_redecoded",
                    *(f"fid_{name}{end}" for name in ("redecoded", "re_sample", "noise_floor", "prior")
                      for end in ("", "_se"))):
            assert math.isfinite(row[key]), (stage, key)
        assert row["elbo"] == pytest.approx(-(row["rate"] + row["distortion"]), rel=1e-5)
        assert len(row["fid_redecoded_values"]) == row["fid_resamples"] == 2
        assert row["steps_trained"] > 0 and row["converged"] in (True, False)
    # the noise floor is a property of the ground truth and the draws: the same after either stage
    assert rows["stage1-encoder"]["fid_noise_floor"] == rows["stage2-joint"]["fid_noise_floor"]
    folder = tmp_path / "out" / "digits"
    gan, _ = load_gan(folder / "gan")
    one, _ = load_stage(folder / "stage1-encoder")
    two, _ = load_stage(folder / "stage2-joint")
    generator = gan.generator.state_dict()
    assert all(torch.equal(one.decoder.trunk.state_dict()[k], v) for k, v in generator.items())
    assert not all(torch.equal(two.decoder.trunk.state_dict()[k], v) for k, v in generator.items())
    holds = [c["holds"] for c in digits["claims"]]
    assert len(holds) == 5 and set(holds) <= {True, False, None}
    assert (folder / "redecoded.png").exists() and (folder / "results.json").exists()
    text = (folder / "results.md").read_text()
    assert "| claim | paper (CelebA) | here | holds? |" in text and "FID noise floor" in text
    # scored again from scratch (the scores files removed), every number comes out the same
    for path in folder.glob("scores-*.json"):
        path.unlink()
    again = gan_decoder.run("smoke", tmp_path / "out", progress=False)
    assert untimed(again["datasets"]["digits"]["rows"]) == untimed(digits["rows"])


def test_the_stages_run_one_by_one_give_the_numbers_of_one_run_and_stage_2_reads_no_image(tmp_path,
                                                                                         monkeypatch):
    whole = gan_decoder.run("smoke", tmp_path / "whole", progress=False)["datasets"]["digits"]
    out = tmp_path / "parts"
    with pytest.raises(ConfigError, match="--stage stage1-encoder needs the finished gan run"):
        gan_decoder.run("smoke", out, progress=False, stage="stage1-encoder")
    with pytest.raises(ConfigError, match="stage must be one of gan, stage1-encoder, stage2-joint, report"):
        gan_decoder.run("smoke", out, progress=False, stage="stage3")
    gan_decoder.run("smoke", out, progress=False, stage="gan")
    part = gan_decoder.run("smoke", out, progress=False, stage="stage1-encoder")["datasets"]["digits"]
    assert [c["holds"] for c in part["claims"]] == [None] * 5   # stage 2 missing: cannot tell
    assert "stage2-joint not run" in part["claims"][0]["here"]

    from rdvae.data import registry

    original, training = registry.load_dataset, []

    def refuse_while_training(*args, **kwargs):
        assert not training, f"stage 2's training read a dataset: load_dataset{args}"
        return original(*args, **kwargs)

    for module in list(sys.modules.values()):
        if getattr(module, "load_dataset", None) is original:
            monkeypatch.setattr(module, "load_dataset", refuse_while_training)
    train_stage = gan_decoder.train_stage

    def watched(config, *args, **kwargs):
        training.append(config.stage)
        try:
            return train_stage(config, *args, **kwargs)
        finally:
            training.pop()

    monkeypatch.setattr(gan_decoder, "train_stage", watched)
    parts = gan_decoder.run("smoke", out, progress=False, stage="stage2-joint")["datasets"]["digits"]
    assert parts["status"] == "done", parts
    assert RunDir(out / "digits" / "stage2-joint").read_summary()["status"] == "done"
    assert untimed(parts["rows"]) == untimed(whole["rows"])
    report = gan_decoder.run("smoke", out, progress=False, stage="report")["datasets"]["digits"]
    assert untimed(report["rows"]) == untimed(whole["rows"]) and report["claims"] == whole["claims"]


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


def scored(stage, converged=True, **values):
    """A stage's scores: every figure 0 with standard error 1, except those given as (value, se)."""
    row = {"stage": stage, "converged": converged}
    for key in ("elbo", "fid_redecoded", "fid_re_sample", "fid_noise_floor", "fid_prior"):
        row[key], row[f"{key}_se"] = values.get(key, (0.0, 1.0))
    return row


def test_the_claims_read_the_direction_from_stage_1_to_stage_2_beyond_two_standard_errors():
    rows = [{"stage": gan_decoder.GAN_ROW},
            scored("stage1-encoder", elbo=(-100.0, 2.0), fid_redecoded=(20.0, 0.5), fid_re_sample=(25.0, 0.5),
                   fid_prior=(3.0, 0.1)),
            scored("stage2-joint", elbo=(50.0, 2.0), fid_redecoded=(2.0, 0.5), fid_re_sample=(25.5, 0.5),
                   fid_noise_floor=(24.0, 0.5), fid_prior=(90.0, 1.0))]
    claims = gan_decoder.direction_claims(rows)
    # ELBO up; FID(gt, re-decoded) down; the [Re] FID within 2 s.e.; prior samples worse; [Re] FID
    # above the floor by 1.5 (2 s.e. of the difference: 1.41)
    assert [c["holds"] for c in claims] == [True, False, None, True, True]
    assert claims[0]["here"] == "-100 ± 2 -> 50 ± 2" and claims[0]["paper"] == "-19072.7 -> 5137.17"
    assert claims[1]["paper"] == "1.311 -> 71.852" and "within 2 s.e." in claims[2]["here"]
    assert claims[4]["here"] == "floor 24 ± 0.5, [Re] FID 25.5 ± 0.5"
    # a stage 1 that did not converge by its criterion: the re-decoding FIDs cannot tell
    rows[1]["converged"] = False
    unconverged = gan_decoder.direction_claims(rows)
    assert [c["holds"] for c in unconverged] == [True, None, None, True, True]
    assert "stage 1 did not converge" in unconverged[1]["here"]
    assert [c["holds"] for c in gan_decoder.direction_claims(rows[:2])] == [None] * 5
    assert gan_decoder.above(0.0, math.nan, 5.0, 1.0) is None   # no spread: cannot tell


def test_repro_takes_a_stage_for_the_gan_decoder_only(tmp_path, capsys):
    assert main(["repro", "gan-decoder", "--scale", "smoke", "--stage", "stage2-joint",
                 "--out", str(tmp_path / "s")]) == 2
    assert "--stage stage2-joint needs the finished stage1-encoder run" in capsys.readouterr().err
    assert main(["repro", "elbo-surgery", "--scale", "smoke", "--stage", "gan",
                 "--out", str(tmp_path / "t")]) == 2
    assert "has no separate stages, so --stage does not apply" in capsys.readouterr().err
