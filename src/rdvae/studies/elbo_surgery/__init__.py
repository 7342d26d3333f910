"""ELBO surgery (Hoffman & Johnson 2016): average KL = index-code MI + marginal KL for VAEs of 2, 10
and 20 latents on binarized MNIST, with the N(0, I) and VampPrior marginals (study: `run`, tables)."""

from rdvae import register_study

from .study import DESCRIPTION, NAME, run

register_study(NAME, run, description=DESCRIPTION)
