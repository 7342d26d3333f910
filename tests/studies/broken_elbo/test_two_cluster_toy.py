"""The two-cluster toy of "Fixing a Broken ELBO": the data and the exact R, D by brute force."""

import math

import torch

from rdvae.studies.broken_elbo.two_cluster import (
    BINS,
    DiscreteToyModel,
    class_information,
    optimal_model_summary,
    two_cluster_data,
)


def test_data_carries_half_a_nat_about_the_class():
    data = two_cluster_data(0.5)
    assert abs(data.mutual_information - 0.5) < 1e-9
    assert abs(data.joint.sum().item() - 1) < 1e-12
    torch.testing.assert_close(data.joint.sum(1), torch.tensor([0.7, 0.3], dtype=torch.float64))
    # brute force: I = sum p(c, x) log p(c, x) / (p(c) p(x))
    brute = 0.0
    for c in range(2):
        for j in range(BINS):
            p = data.joint[c, j].item()
            if p > 0:
                brute += p * math.log(p / (data.joint[c].sum().item() * data.p_x[j].item()))
    assert abs(brute - 0.5) < 1e-9
    assert two_cluster_data(0.3).sigma > data.sigma  # less information, more overlap


def test_exact_rate_and_distortion_match_loops():
    model = DiscreteToyModel(init_scale=1.0, generator=torch.Generator().manual_seed(0))
    data = two_cluster_data(0.5)
    rate, distortion = model.rate_distortion(data.p_x)
    e = torch.softmax(-(model.encoder_w - model.encoder_b) ** 2, dim=0)
    d = torch.softmax(-(model.decoder_w - model.decoder_b) ** 2, dim=1)
    m = torch.softmax(model.marginal_logits, 0)
    r = dd = 0.0
    for j in range(BINS):
        for i in range(BINS):
            w = data.p_x[j].item() * e[i, j].item()
            r += w * math.log(e[i, j].item() / m[i].item())
            dd -= w * math.log(d[i, j].item())
    assert abs(rate.item() - r) < 1e-9 and abs(distortion.item() - dd) < 1e-9
    # the ELBO bounds the log-likelihood of p*: -(R + D) <= -H(x)
    assert -(rate + distortion).item() <= -data.entropy + 1e-9


def test_the_true_process_sits_on_the_frontier_at_the_class_information():
    data = two_cluster_data(0.5)
    best = optimal_model_summary(data)
    assert abs(best["rate"] - 0.5) < 1e-9
    assert abs(best["rate"] + best["distortion"] - data.entropy) < 1e-9  # ELBO = -H: D = H - R
    assert best["cluster_masses"] == [0.7, 0.3] or abs(best["cluster_masses"][0] - 0.7) < 1e-12
    assert abs(class_information(data.joint) - best["rate"]) < 1e-9
