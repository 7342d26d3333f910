"""Fixing a Broken ELBO (Alemi et al., ICML 2018): the two-cluster toy and the rate-distortion sweep of
the twelve encoder/decoder/marginal families on static MNIST.

    study        scales, the MNIST grid and `run` (what `rdvae repro broken-elbo` runs)
    stages       the named stages a scale's grid grows by (--stage), in one sweep folder
    analysis     the analysis of finished runs from their rows: regimes, claims, tables, figs. 3a/b;
                 `python -m rdvae.studies.broken_elbo CSV ... --out DIR` runs it on results CSVs
    paper        what the paper reports (H_hat, fig. 4's models, its betas)
    regimes      autoencoder, syntactic and semantic encoder, autodecoder
    families     the paper's three-character families ("-+v", ...) and their mlp-coded versions
    claims       the section-4 claims checked on a grid (yes, no or cannot tell), and class agreement
    figures      which runs the model panels show (figs. 4-6), and the panels
    two_cluster  the toy model, computed exactly
    toy          the toy trained on the one loop, and its figure (fig. 2)
"""

from rdvae import register_study

from . import families  # noqa: F401 - registers the paper's families
from .study import DESCRIPTION, NAME, run

register_study(NAME, run, description=DESCRIPTION)
