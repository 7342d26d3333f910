"""DCGAN networks (Radford et al. 2016, as in the PyTorch DCGAN tutorial) and their VAE roles.

The generator g maps z [N, d] to images; a fixed observation noise makes it a Gaussian decoder,
d(x|z) = N(x; g(z), sigma^2 I) (the GAN-as-decoder experiment of the [Re] VAE-approximation-error
paper, section 4). The discriminator's convolution stack with a Gaussian head is the encoder.

For images of side S = 4 * 2^k (32: k = 3, 64: k = 4):

    generator      z -> ConvT(ngf 2^(k-1), 4, 1, 0) 4x4 -> BN -> ReLU
                     -> [ConvT(c / 2, 4, 2, 1) -> BN -> ReLU] (k - 1 times) -> ConvT(C, 4, 2, 1) -> Tanh
    discriminator  x -> Conv(ndf, 4, 2, 1) -> LReLU(0.2) -> [Conv(2c, 4, 2, 1) -> BN -> LReLU(0.2)]
                     (k - 1 times) 4x4 -> Conv(1, 4, 1, 0): one logit
    encoder        the discriminator's stack to its 4x4 features, then mu = Linear(d),
                   variance = Softplus(Linear(d)) (rdvae.components.encoders.GaussianEncoder)

(ngf = ndf = 64, S = 64 is the tutorial's network.) rdvae's images are in [0, 1]: the generator's tanh
output is mapped to (t + 1) / 2 and the discriminator and encoder see 2x - 1, so the networks are
the tutorial's in its [-1, 1] units. An observation noise of 0.05 in those units is 0.025 in rdvae's.
Weights start from N(0, 0.02), BatchNorm scales from N(1, 0.02) (the tutorial's `weights_init`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from rdvae.components.encoders import GaussianEncoder
from rdvae.components.gaussian_decoders import GaussianDecoder

NGF = NDF = 64
# the paper's sigma = 0.05 on the generator's [-1, 1] scale, in rdvae's [0, 1] units
PAPER_SIGMA = 0.025


def dcgan_levels(event_shape: Sequence[int], what: str) -> tuple[int, int]:
    """(channels, k) for square images of side 4 * 2^k, k >= 2."""
    if len(event_shape) != 3:
        raise ValueError(f"the DCGAN {what} needs images [C, H, W], got event shape {tuple(event_shape)}")
    channels, height, width = event_shape
    k = round(math.log2(height / 4)) if height >= 4 else 0
    if height != width or k < 2 or 4 * 2**k != height:
        raise ValueError(f"the DCGAN {what} needs square images of side 16, 32, 64, 128, ... (4 * 2^k), got "
                         f"{height} x {width}; pad or resize the data (e.g. --set data.pad=2 for 28 x 28 "
                         "MNIST)")
    return channels, k


def dcgan_init_(module: nn.Module) -> nn.Module:
    """The tutorial's initialisation: conv weights N(0, 0.02), BatchNorm N(1, 0.02) and bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return module


def check_width(name: str, value) -> int:
    """ngf / ndf: the width of the last (first) block, a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} (the DCGAN's base width) must be an integer >= 1, got {value!r}")
    return value


class DCGANGenerator(nn.Module):
    """g(z): z [N, d] -> images [N, C, S, S] in [0, 1]."""

    def __init__(self, event_shape: Sequence[int], latent_dim: int, ngf: int = NGF):
        super().__init__()
        channels, k = dcgan_levels(event_shape, "generator")
        ngf = check_width("ngf", ngf)
        self.latent_dim, self.event_shape = latent_dim, tuple(event_shape)
        width = ngf * 2 ** (k - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(latent_dim, width, 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(width), nn.ReLU(True)]
        for _ in range(k - 1):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 2),
                       nn.ReLU(True)]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = dcgan_init_(nn.Sequential(*layers))

    def forward(self, z: Tensor) -> Tensor:
        return 0.5 * (self.net(z.reshape(len(z), -1, 1, 1)) + 1.0)


class DCGANFeatures(nn.Module):
    """The discriminator's convolution stack: x [N, C, S, S] in [0, 1] -> 4x4 features, flattened."""

    def __init__(self, event_shape: Sequence[int], ndf: int = NDF):
        super().__init__()
        channels, k = dcgan_levels(event_shape, "discriminator / encoder")
        ndf = check_width("ndf", ndf)
        layers: list[nn.Module] = [nn.Conv2d(channels, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        width = ndf
        for _ in range(k - 1):
            layers += [nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * width),
                       nn.LeakyReLU(0.2, True)]
            width *= 2
        self.channels = width
        self.out_features = width * 16
        self.net = dcgan_init_(nn.Sequential(*layers))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(2.0 * x - 1.0).flatten(1)


class DCGANDiscriminator(nn.Module):
    """D(x): the logit that x is real, [N]."""

    def __init__(self, event_shape: Sequence[int], ndf: int = NDF):
        super().__init__()
        self.features = DCGANFeatures(event_shape, ndf)
        self.head = dcgan_init_(nn.Conv2d(self.features.channels, 1, 4, 1, 0, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        h = self.features(x).reshape(len(x), self.features.channels, 4, 4)
        return self.head(h).flatten()


class GAN(nn.Module):
    """A generator and its discriminator, saved and restored together."""

    def __init__(self, generator: DCGANGenerator, discriminator: DCGANDiscriminator):
        super().__init__()
        self.generator, self.discriminator = generator, discriminator

    @property
    def latent_dim(self) -> int:
        return self.generator.latent_dim

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def dcgan(event_shape: Sequence[int], latent_dim: int = 100, ngf: int = NGF, ndf: int = NDF) -> GAN:
    return GAN(DCGANGenerator(event_shape, latent_dim, ngf), DCGANDiscriminator(event_shape, ndf))


def dcgan_encoder(event_shape: Sequence[int], latent_dim: int, ndf: int = NDF) -> GaussianEncoder:
    """e(z|x) = N(mu(x), diag(var(x))) on the discriminator's stack."""
    return GaussianEncoder(DCGANFeatures(event_shape, ndf), latent_dim)


def dcgan_decoder(event_shape: Sequence[int], latent_dim: int, ngf: int = NGF,
                  sigma: float = PAPER_SIGMA) -> GaussianDecoder:
    """d(x|z) = N(x; g(z), sigma^2 I), sigma fixed (rdvae's [0, 1] units)."""
    return GaussianDecoder(DCGANGenerator(event_shape, latent_dim, ngf), event_shape, sigma, "fixed")
