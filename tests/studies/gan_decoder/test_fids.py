"""The FIDs against the ground truth: each image set is what its name says, every set (the noise floor's
too) goes through the one feature network, the spread is over independent resamples, and the noise
floor is the observation noise's."""

import math

import pytest
import torch
from torch import nn

from rdvae.device import seeded
from rdvae.fid import extract_features, feature_statistics, frechet_distance
from rdvae.studies.gan_decoder.dcgan import dcgan
from rdvae.studies.gan_decoder.fids import COMPARED, image_sets, mean_and_spread, stage_fids
from rdvae.studies.gan_decoder.ground_truth import GroundTruth, stage_model


def tiny_truth(sigma: float = 0.025) -> GroundTruth:
    torch.manual_seed(0)
    return GroundTruth(dcgan((1, 16, 16), 8, ngf=4, ndf=4).generator, sigma)


class RecordingFeatures(nn.Module):
    """Pixel statistics as features (mean, spread and a few pixels of each image), counting the images
    it sees."""

    def __init__(self):
        super().__init__()
        self.seen = 0

    def features(self, x):
        self.seen += len(x)
        flat = x.flatten(1)
        return torch.cat([flat.mean(1, keepdim=True), flat.std(1, keepdim=True), flat[:, ::37]], 1)


def test_each_image_set_is_what_its_fid_compares():
    truth = tiny_truth()
    model = stage_model(truth, 4, 4, seed=1)
    with torch.no_grad():
        model.decoder.trunk.net[0].weight.mul_(1.5)   # a decoder g other than g0
    draws = truth.draw(20, seed=5)
    with seeded(6):
        images = image_sets(model, draws)
    with seeded(6), torch.no_grad():   # by hand, in the order image_sets draws
        model.eval()
        q = model.encoder(draws.x)
        z_q = q.mean + q.stddev * torch.randn_like(q.mean)
        re_sample = (model.decoder.trunk(z_q) + 0.025 * torch.randn(20, 1, 16, 16)).clamp(0, 1)
        prior = model.decoder.trunk(torch.randn(20, 8))
        assert torch.equal(images["ground_truth"], truth.generator(draws.z))
        assert torch.allclose(images["redecoded"], model.decoder.trunk(q.mean))
    assert torch.allclose(images["re_sample"], re_sample, atol=1e-6)
    assert torch.allclose(images["prior"], prior)
    assert torch.equal(images["noise_floor"], draws.x.clamp(0, 1))
    assert not torch.allclose(images["redecoded"], images["ground_truth"])


def test_every_fid_and_the_noise_floor_use_the_same_features_and_draws():
    truth, features = tiny_truth(), RecordingFeatures()
    model = stage_model(truth, 4, 4, seed=1)
    result = stage_fids(features, truth, model, n=60, resamples=1, seed=9, chunk=25)
    assert features.seen == 60 * (1 + len(COMPARED))   # g0(z) and the four compared sets, one network
    # the same numbers by hand: one stream seeded 9, chunks of 25, the features of the same network
    with seeded(9):
        chunks = [image_sets(model, truth.draw(m)) for m in (25, 25, 10)]
    stats = {name: feature_statistics(torch.cat([extract_features(features, c[name]) for c in chunks]))
             for name in ("ground_truth", *COMPARED)}
    for name in COMPARED:
        assert result[f"fid_{name}"] == pytest.approx(frechet_distance(stats["ground_truth"], stats[name]),
                                                      rel=1e-6), name
    assert math.isnan(result["fid_noise_floor_se"])   # one resample: no spread
    redecoded = torch.cat([c["redecoded"] for c in chunks])
    ground = torch.cat([c["ground_truth"] for c in chunks])
    assert result["rmse_redecoded"] == pytest.approx((redecoded - ground).square().mean().sqrt().item(),
                                                     rel=1e-5)


def test_the_spread_is_over_independent_resamples():
    truth, features = tiny_truth(), RecordingFeatures()
    model = stage_model(truth, 4, 4, seed=1)
    three = stage_fids(features, truth, model, n=40, resamples=3, seed=9)
    values = three["fid_redecoded_values"]
    assert len(values) == 3 and len(set(values)) == 3
    first = stage_fids(features, truth, model, n=40, resamples=1, seed=9)   # resample r is seed 9 + r
    second = stage_fids(features, truth, model, n=40, resamples=1, seed=10)
    assert values[:2] == [first["fid_redecoded"], second["fid_redecoded"]]
    mean, se = mean_and_spread(values)
    assert three["fid_redecoded"] == mean and three["fid_redecoded_se"] == pytest.approx(
        torch.tensor(values).std().item() / math.sqrt(3), rel=1e-6)


def test_the_noise_floor_grows_with_the_observation_noise():
    floors = []
    for sigma in (0.0025, 0.025, 0.1):
        truth = tiny_truth(sigma)
        result = stage_fids(RecordingFeatures(), truth, stage_model(truth, 4, 4), n=300, resamples=2, seed=1)
        floors.append(result["fid_noise_floor"])
    assert 0 < floors[0] < floors[1] < floors[2]
    assert floors[0] < 0.01 * floors[2]


def test_sizes_are_checked():
    truth = tiny_truth()
    with pytest.raises(ValueError, match="n must be an integer >= 2, got 1"):
        stage_fids(RecordingFeatures(), truth, stage_model(truth, 4, 4), n=1, resamples=2, seed=0)
    with pytest.raises(ValueError, match="resamples must be an integer >= 1, got 0"):
        stage_fids(RecordingFeatures(), truth, stage_model(truth, 4, 4), n=10, resamples=0, seed=0)
