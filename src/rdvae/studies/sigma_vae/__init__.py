"""Calibrated Gaussian decoders (Lin et al. 2019; Rybkin et al. 2021, "sigma-VAE") against VAE,
beta-VAE, DIP-VAE and WAE.

    study   the runs, FID under prior and aggregate-posterior sampling, tables, `run`
    claims  the published orderings, checked on the runs
"""

from rdvae import register_study

from .study import DESCRIPTION, NAME, run

register_study(NAME, run, description=DESCRIPTION)
