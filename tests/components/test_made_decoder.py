"""The conditional-MADE decoder: autoregressive by gradients, normalised and exactly sampled, by
enumerating every image of a tiny size."""

import math

import pytest
import torch
from tests.components.test_pixelcnn import all_images, randomized

from rdvae.components.made_decoder import ConditionalMADE, MADEDecoder
from rdvae.presets import build_model


def test_logit_of_pixel_i_depends_on_earlier_pixels_and_z_only():
    net = randomized(ConditionalMADE(12, 3, (40, 40)))
    x = torch.bernoulli(torch.full((1, 12), 0.5)).requires_grad_(True)
    z = torch.randn(1, 3, requires_grad=True)
    logits = net(x, z)[0]
    for i in range(12):
        grad_x, grad_z = torch.autograd.grad(logits[i], (x, z), retain_graph=True)
        assert torch.all(grad_x[0, i:] == 0), f"logit {i} sees pixels at or after {i}"
        assert torch.all(grad_z != 0), f"logit {i} ignores z"
    # with 40 hidden units per layer every earlier pixel reaches the last logit
    (grad_x,) = torch.autograd.grad(logits[-1], x)
    assert torch.all(grad_x[0, :-1] != 0)


def test_log_probabilities_sum_to_one_over_all_images():
    torch.manual_seed(1)
    decoder = randomized(MADEDecoder((1, 2, 4), latent_dim=3, hidden=(16, 16)))
    images = all_images(2, 4)   # 256
    with torch.no_grad():
        for zk in torch.randn(3, 3):
            total = torch.logsumexp(decoder(zk.expand(len(images), 3)).log_prob(images).double(), 0)
            assert abs(total.item()) < 1e-4


def test_ancestral_samples_follow_the_decoders_own_probabilities():
    torch.manual_seed(2)
    decoder = randomized(MADEDecoder((1, 2, 4), latent_dim=2, hidden=(16,)), 0.7)
    images = all_images(2, 4)
    z = torch.randn(1, 2)
    with torch.no_grad():
        probs = decoder(z.expand(len(images), 2)).log_prob(images).double().exp()
        n = 8000
        samples = decoder(z).sample((n,)).reshape(n, 8)
    codes = (samples * 2 ** torch.arange(7, -1, -1)).sum(-1).long()
    counts = torch.bincount(codes, minlength=256).double()
    keep = probs * n >= 5
    chi2 = ((counts[keep] - n * probs[keep]) ** 2 / (n * probs[keep])).sum().item()
    dof = int(keep.sum()) - 1
    assert chi2 < dof + 5 * math.sqrt(2 * dof), (chi2, dof)


def test_log_prob_is_the_sum_of_per_pixel_bernoulli_terms_and_checks_its_input():
    decoder = randomized(MADEDecoder((1, 3, 3), latent_dim=2, hidden=(8,)))
    x = torch.bernoulli(torch.full((4, 1, 3, 3), 0.5))
    z = torch.randn(4, 2)
    dist = decoder(z)
    assert dist.batch_shape == (4,) and dist.event_shape == (1, 3, 3)
    logits = decoder.network(x.reshape(4, 9), z)
    manual = torch.distributions.Bernoulli(logits=logits).log_prob(x.reshape(4, 9)).sum(-1)
    torch.testing.assert_close(dist.log_prob(x), manual)
    with pytest.raises(ValueError, match="one image per z"):
        dist.log_prob(x[:2])
    with pytest.raises(ValueError, match="hidden layers"):
        ConditionalMADE(9, 2, ())


def test_the_made_decoder_trains_in_a_vae_through_its_registered_name():
    from rdvae.presets import register_family
    register_family("test-made", "mlp", "made", "-", 2, replace=True)
    model = build_model("test-made", (1, 4, 4), decoder_hidden=[8], hidden=[8])
    out = model(torch.bernoulli(torch.full((3, 1, 4, 4), 0.5)))
    (out.rate + out.distortion).mean().backward()
    assert torch.isfinite(out.elbo).all() and model.sample(2).sample().shape == (2, 1, 4, 4)
