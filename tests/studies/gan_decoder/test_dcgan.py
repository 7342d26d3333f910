"""The DCGAN networks: the tutorial's layer stack at 64 x 64, one block fewer at 32 x 32, images in
[0, 1], and the generator as a Gaussian decoder with a fixed sigma."""

import math

import pytest
import torch
from torch import nn

from rdvae.presets import build_model
from rdvae.studies.gan_decoder.dcgan import PAPER_SIGMA, dcgan


def test_the_tutorial_network_at_64_and_one_block_fewer_at_32():
    big = dcgan((3, 64, 64), 100, 64, 64)
    widths = [m.out_channels for m in big.generator.net if isinstance(m, nn.ConvTranspose2d)]
    assert widths == [512, 256, 128, 64, 3]
    convs = [m.out_channels for m in big.discriminator.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [64, 128, 256, 512, 1]
    small = dcgan((1, 32, 32), 100, 64, 64)
    small_widths = [m.out_channels for m in small.generator.net if isinstance(m, nn.ConvTranspose2d)]
    assert small_widths == [256, 128, 64, 1]
    images = small.generator(torch.randn(5, 100))
    assert images.shape == (5, 1, 32, 32) and 0 <= images.min() and images.max() <= 1
    assert small.discriminator(images).shape == (5,)


def test_the_decoder_is_a_gaussian_with_the_generator_as_mean():
    model = build_model("dcgan", (1, 16, 16), 8, ngf=4, ndf=4)
    z, x = torch.randn(3, 8), torch.rand(3, 1, 16, 16)
    model.eval()
    likelihood = model.decoder(z)
    mean = model.decoder.trunk(z)
    expected = torch.distributions.Normal(mean, PAPER_SIGMA).log_prob(x).sum((1, 2, 3))
    assert torch.allclose(likelihood.log_prob(x), expected, rtol=1e-5)
    assert math.isclose(likelihood.stddev.max().item(), PAPER_SIGMA, rel_tol=1e-6)


def test_sizes_that_are_not_a_power_of_two_are_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"square images of side 16, 32, 64.*data.pad=2"):
        dcgan((1, 28, 28))


@pytest.mark.parametrize("options", [{"ngf": 0}, {"ndf": -1}])
def test_a_width_below_one_names_the_option(options):
    (name, value), = options.items()
    with pytest.raises(ValueError, match=f"{name} .*must be an integer >= 1, got {value!r}"):
        build_model("dcgan", (1, 16, 16), 8, **options)
