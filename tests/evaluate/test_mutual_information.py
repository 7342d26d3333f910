import math

import torch
from tests.helpers import LinearGaussianEncoder, ppca_vae

from rdvae.components import StandardNormal
from rdvae.evaluate import aggregate_log_density, mutual_information, posterior_samples
from rdvae.model import VAE


def test_aggregate_density_equals_brute_force():
    enc = LinearGaussianEncoder(3, 2)
    with torch.no_grad():
        enc.log_scale.copy_(torch.tensor([-1.0, 0.3]))
    x = torch.randn(7, 3)
    z = torch.randn(11, 2)
    brute = torch.stack([
        torch.logsumexp(torch.stack([enc(x[n:n + 1]).log_prob(zm)[0] for n in range(7)]), 0)
        - math.log(7) for zm in z
    ])
    torch.testing.assert_close(aggregate_log_density(enc, x, z, batch_size=2), brute,
                               atol=1e-5, rtol=0)


def test_mutual_information_equals_brute_force_and_stays_below_log_n():
    model, _, _ = ppca_vae(data_dim=3, latent_dim=2)
    with torch.no_grad():
        model.encoder.log_scale.fill_(-1.5)
    x = torch.randn(9, 3) * 3
    torch.manual_seed(5)
    mi = mutual_information(model, x, batch_size=4)
    torch.manual_seed(5)
    z, log_cond = posterior_samples(model.encoder, x, batch_size=4)
    brute = []
    for n in range(9):
        comps = torch.stack([model.encoder(x[m:m + 1]).log_prob(z[n])[0] for m in range(9)])
        brute.append(log_cond[n] - (torch.logsumexp(comps, 0) - math.log(9)))
    assert abs(mi.value - torch.stack(brute).mean().item()) < 1e-5
    assert mi.within_limit and mi.value <= math.log(9)


def test_mutual_information_limits():
    enc = LinearGaussianEncoder(2, 2)
    x = torch.randn(50, 2)
    with torch.no_grad():  # encoder ignores x: I = 0 exactly
        enc.linear.weight.zero_()
    model = VAE(enc, None, StandardNormal(2))
    assert abs(mutual_information(model, x).value) < 1e-6
    with torch.no_grad():  # far-apart means, tiny scales: every z identifies its x, I -> log N
        enc.linear.weight.copy_(100 * torch.eye(2))
        enc.log_scale.fill_(-6)
    mi = mutual_information(model, x)
    assert abs(mi.value - math.log(50)) < 1e-3 and mi.within_limit
