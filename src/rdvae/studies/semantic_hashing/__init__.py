"""Semantic hashing on 20 Newsgroups with a Bernoulli VAE (the [Re] reproduction of "VAE Approximation
Error: ELBO and Exponential Families", sec. 5).

    study     the grid of encoders, bits and decoder depths, the [Re]-convention figures, tables, `run`
    families  hash-e1, hash-e2, hash-e3
"""

from rdvae import register_study

from . import families  # noqa: F401 - registers the hash-* families
from .study import DESCRIPTION, NAME, run

register_study(NAME, run, description=DESCRIPTION)
