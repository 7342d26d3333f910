"""The DCGAN's roles in a VAE, registered as any plugin's are (rdvae.register_encoder, register_decoder,
register_family): encoder and decoder `dcgan` and the family `dcgan` (N(0, I) marginal, latent 100)."""

from __future__ import annotations

from rdvae.presets import register_family
from rdvae.registry import register_decoder, register_encoder

from .dcgan import NDF, NGF, PAPER_SIGMA
from .dcgan import dcgan_decoder as _dcgan_decoder
from .dcgan import dcgan_encoder as _dcgan_encoder


@register_encoder("dcgan")
def dcgan_encoder(event_shape, latent_dim, ndf=NDF):
    """The DCGAN discriminator's conv stack (LeakyReLU 0.2, BatchNorm) with a Gaussian head
    (rdvae.studies.gan_decoder.dcgan; square images of side 16, 32, 64, ...)."""
    return _dcgan_encoder(event_shape, latent_dim, ndf)


@register_decoder("dcgan")
def dcgan_decoder(event_shape, latent_dim, ngf=NGF, sigma=PAPER_SIGMA):
    """A DCGAN generator as a Gaussian decoder N(g(z), sigma^2 I), sigma fixed in [0, 1] units (the
    default 0.025 is the paper's 0.05 on the generator's [-1, 1] scale; rdvae.studies.gan_decoder.dcgan)."""
    return _dcgan_decoder(event_shape, latent_dim, ngf, sigma)


register_family("dcgan", "dcgan", "dcgan", "-", 100,
                "DCGAN generator as a Gaussian decoder (fixed sigma), the discriminator's conv stack as the "
                "encoder, N(0, I) marginal (the GAN-as-decoder experiment; images of side 16, 32, 64, ...)")
