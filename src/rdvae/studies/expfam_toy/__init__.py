"""The Gaussian-mixture toy of "VAE Approximation Error: ELBO and Exponential Families" ([Re] sec. 3):
a factorized 2-bit encoder against the consistent 4-way one, with exact expectations (study: the toy
model, its two training stages on the one loop, the figure, the table and `run`)."""

from rdvae import register_study

from .study import DESCRIPTION, NAME, run

register_study(NAME, run, description=DESCRIPTION)
