"""The PixelCNN decoder: causal masking by gradients, normalisation and exact sampling by
enumerating every image of a tiny size."""

import itertools
import math

import pytest
import torch

from rdvae.components.pixelcnn import PixelCNN, PixelCNNDecoder


def randomized(module: torch.nn.Module, std: float = 0.3) -> torch.nn.Module:
    """Non-trivial weights everywhere, so a missing mask would show up in the gradients."""
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, std)
    return module


def all_images(height: int, width: int) -> torch.Tensor:
    states = torch.tensor(list(itertools.product([0.0, 1.0], repeat=height * width)))
    return states.reshape(-1, 1, height, width)


@pytest.mark.parametrize("size,levels", [((8, 8), 3), ((4, 6), 2), ((3, 3), 1)])
def test_logit_of_pixel_i_does_not_depend_on_pixels_at_or_after_i(size, levels):
    height, width = size
    net = randomized(PixelCNN(size, channels=8, levels=levels, resnet_layers=2))
    x = torch.bernoulli(torch.full((1, 1, height, width), 0.5)).requires_grad_(True)
    logits = net(x, torch.randn(1, 1, height, width)).flatten()
    pixels = height * width
    for i in range(pixels):
        (grad,) = torch.autograd.grad(logits[i], x, retain_graph=True)
        grad = grad.flatten()
        assert torch.all(grad[i:] == 0), f"logit {i} sees pixels {torch.nonzero(grad[i:]).flatten() + i}"
        # the receptive field covers every earlier pixel at these sizes
        assert torch.all(grad[:i] != 0), f"logit {i} ignores earlier pixels"


def test_paper_size_network_is_causal_at_28x28():
    net = randomized(PixelCNN((28, 28), channels=4, levels=3, resnet_layers=2))
    x = torch.bernoulli(torch.full((1, 1, 28, 28), 0.5)).requires_grad_(True)
    logits = net(x, torch.randn(1, 1, 28, 28)).flatten()
    for i in [0, 1, 27, 28, 29, 300, 405, 783]:
        (grad,) = torch.autograd.grad(logits[i], x, retain_graph=True)
        assert torch.all(grad.flatten()[i:] == 0)


def test_log_probabilities_sum_to_one_over_all_images():
    torch.manual_seed(1)
    decoder = randomized(PixelCNNDecoder((1, 2, 4), latent_dim=3, channels=6, levels=2, resnet_layers=1))
    images = all_images(2, 4)  # 256, through a down- and an up-sampling level
    z = torch.randn(3, 3)
    with torch.no_grad():
        for zk in z:
            dist = decoder(zk.expand(len(images), 3))
            total = torch.logsumexp(dist.log_prob(images).double(), 0)
            assert abs(total.item()) < 1e-4


def test_ancestral_samples_follow_the_decoders_own_probabilities():
    torch.manual_seed(2)
    decoder = randomized(PixelCNNDecoder((1, 2, 4), latent_dim=2, channels=6, levels=2, resnet_layers=1), 0.5)
    images = all_images(2, 4)  # 256
    z = torch.randn(1, 2)
    with torch.no_grad():
        probs = decoder(z.expand(len(images), 2)).log_prob(images).double().exp()
        n = 8000
        samples = decoder(z).sample((n,)).reshape(n, 8)
    assert abs(probs.sum().item() - 1) < 1e-5
    codes = (samples * 2 ** torch.arange(7, -1, -1)).sum(-1).long()
    counts = torch.bincount(codes, minlength=256).double()
    total_variation = 0.5 * (counts / n - probs).abs().sum().item()
    # expected TV of an exact sampler: about sum_k sqrt(p_k (1 - p_k) / (2 pi n)), well below 0.05
    expected = (probs * (1 - probs) / (2 * math.pi * n)).sqrt().sum().item()
    assert total_variation < 2 * expected + 0.005, (total_variation, expected)
    # chi-square over cells with enough mass
    keep = probs * n >= 5
    chi2 = ((counts[keep] - n * probs[keep]) ** 2 / (n * probs[keep])).sum().item()
    dof = int(keep.sum()) - 1
    assert chi2 < dof + 5 * math.sqrt(2 * dof), (chi2, dof)


def test_log_prob_is_the_sum_of_per_pixel_bernoulli_terms_and_depends_on_z():
    decoder = randomized(PixelCNNDecoder((1, 4, 4), latent_dim=3, channels=4, levels=2, resnet_layers=1))
    x = torch.bernoulli(torch.full((5, 1, 4, 4), 0.5))
    torch.manual_seed(3)
    z = torch.randn(5, 3)
    dist = decoder(z)
    assert dist.batch_shape == (5,) and dist.event_shape == (1, 4, 4)
    logits = dist.logits(x)
    manual = torch.distributions.Bernoulli(logits=logits).log_prob(x).sum((1, 2, 3))
    torch.testing.assert_close(dist.log_prob(x), manual)
    assert not torch.allclose(decoder(torch.randn(5, 3)).log_prob(x), manual)
    with pytest.raises(ValueError, match="one image per z"):
        dist.log_prob(x[:2])


def test_logits_of_the_top_rows_do_not_change_when_the_image_is_cropped_below():
    # what ancestral sampling relies on to run the network on the rows above the pixel only
    net = randomized(PixelCNN((12, 8), channels=6, levels=3, resnet_layers=1))
    x = torch.bernoulli(torch.full((2, 1, 12, 8), 0.5))
    cond = torch.randn(2, 1, 12, 8)
    with torch.no_grad():
        full = net(x, cond)
        for top in (4, 8):
            torch.testing.assert_close(net(x[:, :, :top], cond[:, :, :top]), full[:, :, :top])


def test_sizes_that_cannot_be_downsampled_are_refused():
    with pytest.raises(ValueError, match="divisible by 4"):
        PixelCNN((6, 6), levels=3)
    with pytest.raises(ValueError, match="1-channel"):
        PixelCNNDecoder((3, 8, 8), latent_dim=2)
