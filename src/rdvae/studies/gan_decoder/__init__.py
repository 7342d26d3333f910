"""A GAN generator as a Gaussian decoder: the approximation error of a factorised Gaussian encoder ([Re]
"VAE approximation error", ReScience 2023, sec. 4).

    study        scales, the two stages, their scores, claims, table and panel, `run`
    dcgan        the DCGAN networks and their VAE roles
    adversarial  the GAN trained on the one loop (two optimizers), with the mode-collapse guard
    families     encoder, decoder and family `dcgan`, registered
"""

from rdvae import register_study

from . import families  # noqa: F401 - registers encoder, decoder and family dcgan
from .study import DESCRIPTION, NAME, run

register_study(NAME, run, description=DESCRIPTION)
