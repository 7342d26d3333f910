"""A GAN generator as a Gaussian decoder: the approximation error of a factorised Gaussian encoder ([Re]
"VAE approximation error", ReScience 2023, sec. 4).

    study         scales, the named stages, their scores, claims, table and panel, `run`
    dcgan         the DCGAN networks and their VAE roles
    adversarial   stage 0: the GAN trained on the one loop (two optimizers), with the mode-collapse guard
    ground_truth  p*(z, x) = N(z; 0, I) N(x; g0(z), sigma^2 I), the GAN's generator with noise, and its draws
    stages        stages 1 and 2 as a plan on fresh draws of the ground truth, with a convergence criterion
    fids          the FIDs against the ground truth (re-decoded, [Re]-style noisy, noise floor, prior)
    families      encoder, decoder and family `dcgan`, registered
"""

from rdvae import register_study

from . import families  # noqa: F401 - registers encoder, decoder and family dcgan
from .study import DESCRIPTION, NAME, run

register_study(NAME, run, description=DESCRIPTION)
