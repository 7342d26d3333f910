import pytest
import torch

from rdvae.components import mlp_decoder, mlp_encoder, simple_conv_encoder, simple_deconv_decoder
from rdvae.components.layers import gated_linear


def test_gated_linear_unit_is_linear_times_sigmoid():
    layer = gated_linear(5, 3)
    x = torch.randn(4, 5)
    W, b = layer.layer.weight, layer.layer.bias
    expected = (x @ W[:3].T + b[:3]) * torch.sigmoid(x @ W[3:].T + b[3:])
    torch.testing.assert_close(layer(x), expected)


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8)])
def test_paper_conv_encoder_and_deconv_decoder_shapes(shape):
    enc, dec = simple_conv_encoder(shape, 64), simple_deconv_decoder(shape, 64)
    q = enc(torch.rand(3, *shape))
    assert q.batch_shape == (3,) and q.event_shape == (64,)
    assert (q.base_dist.scale > 0).all()
    px = dec(q.rsample())
    assert px.base_dist.logits.shape == (3, *shape)
    assert px.log_prob(torch.rand(3, *shape).bernoulli()).shape == (3,)


def test_conv_stack_matches_the_paper_for_mnist():
    convs = [m for m in simple_conv_encoder((1, 28, 28), 64).modules() if isinstance(m, torch.nn.Conv2d)]
    # gated layers hold 2C output channels
    assert [c.out_channels // 2 for c in convs] == [32, 32, 64, 64, 256]
    assert [c.kernel_size[0] for c in convs] == [5, 5, 5, 5, 7]
    assert [c.stride[0] for c in convs] == [1, 2, 1, 2, 1]


def test_conv_width_scales_every_channel_count_and_keeps_the_shapes():
    shape = (1, 28, 28)
    enc = simple_conv_encoder(shape, 16, conv_width=0.25)
    dec = simple_deconv_decoder(shape, 16, conv_width=0.25)
    convs = [m for m in enc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels // 2 for c in convs] == [8, 8, 16, 16, 64]
    assert enc.loc.in_features == 64
    hidden = [m.out_channels // 2 for m in dec.modules()
              if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)][:-1]
    assert hidden == [16, 16, 16, 8, 8, 8]   # the paper's 64, 64, 64, 32, 32, 32 at 1/4
    full = sum(p.numel() for p in simple_deconv_decoder(shape, 16).parameters())
    assert sum(p.numel() for p in dec.parameters()) < full / 8
    px = dec(enc(torch.rand(2, *shape)).rsample())
    assert px.base_dist.logits.shape == (2, *shape)
    with pytest.raises(ValueError, match="conv_width must be > 0"):
        simple_conv_encoder(shape, 16, conv_width=0)


def test_bernoulli_distortion_is_bce_with_logits():
    dec = mlp_decoder((1, 4, 4), latent_dim=2, hidden=(8,))
    z, x = torch.randn(5, 2), torch.rand(5, 1, 4, 4).bernoulli()
    logits = dec.trunk(z)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3))
    torch.testing.assert_close(-dec(z).log_prob(x), bce)


def test_mlp_encoder_rejects_nothing_and_returns_diagonal_gaussian():
    q = mlp_encoder((1, 8, 8), 4, hidden=(16, 8))(torch.rand(2, 1, 8, 8))
    assert q.mean.shape == (2, 4)
