import math

import torch

from rdvae.components import GaussianMixtureMarginal, StandardNormal, VampPrior, mlp_encoder


def test_vampprior_density_is_the_weighted_mixture_of_encoder_posteriors():
    enc = mlp_encoder((1, 4, 4), latent_dim=3, hidden=(8,))
    vamp = VampPrior(3, (1, 4, 4), pseudo_inputs=6)
    with torch.no_grad():
        vamp.logits.copy_(torch.randn(6))
    z = torch.randn(10, 3)
    w = torch.softmax(vamp.logits, 0)
    brute = torch.stack([
        torch.log(sum(w[i] * enc(vamp.pseudo_inputs[i:i + 1]).log_prob(zm).exp()[0] for i in range(6)))
        for zm in z
    ])
    torch.testing.assert_close(vamp(enc).log_prob(z), brute, atol=1e-5, rtol=1e-5)


def test_vampprior_gradients_reach_pseudo_inputs_and_weights():
    enc = mlp_encoder((1, 4, 4), latent_dim=2, hidden=(8,))
    vamp = VampPrior(2, (1, 4, 4), pseudo_inputs=3)
    vamp(enc).log_prob(torch.randn(5, 2)).sum().backward()
    assert vamp.pseudo_input_logits.grad.abs().sum() > 0 and vamp.logits.grad.abs().sum() > 0


def test_learned_mixture_density_brute_force_and_normalised():
    mog = GaussianMixtureMarginal(1, components=3)
    with torch.no_grad():
        mog.logits.copy_(torch.tensor([0.2, -1.0, 0.5]))
    grid = torch.linspace(-15, 15, 30001)[:, None]
    density = mog().log_prob(grid).exp()
    assert abs(torch.trapezoid(density, grid[:, 0]).item() - 1) < 1e-4
    w = torch.softmax(mog.logits, 0)
    sd = mog.log_scale.exp()[:, 0]
    brute = sum(w[k] * torch.exp(-0.5 * ((grid[:, 0] - mog.loc[k, 0]) / sd[k]) ** 2)
                / (sd[k] * math.sqrt(2 * math.pi)) for k in range(3))
    torch.testing.assert_close(density, brute, atol=1e-6, rtol=1e-4)


def test_standard_normal():
    m = StandardNormal(3)()
    z = torch.randn(4, 3)
    torch.testing.assert_close(m.log_prob(z), -0.5 * (z**2).sum(-1) - 1.5 * math.log(2 * math.pi))
