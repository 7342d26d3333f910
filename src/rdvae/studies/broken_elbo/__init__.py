"""Fixing a Broken ELBO (Alemi et al., ICML 2018): the two-cluster toy and the rate-distortion sweep of
the twelve encoder/decoder/marginal families on static MNIST.

    study        scales, the MNIST grid, regimes, tables and `run` (what `rdvae repro broken-elbo` runs)
    families     the paper's three-character families ("-+v", ...) and their mlp-coded versions
    claims       the section-4 claims checked on a grid, and class agreement
    figures      which runs the model panels show (figs. 4-6), and the panels
    two_cluster  the toy model, computed exactly
    toy          the toy trained on the one loop, and its figure (fig. 2)
"""

from rdvae import register_study

from . import families  # noqa: F401 - registers the paper's families
from .study import DESCRIPTION, NAME, run

register_study(NAME, run, description=DESCRIPTION)
