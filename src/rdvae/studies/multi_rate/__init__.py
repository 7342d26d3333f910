"""Multi-Rate VAE (Bae et al., ICLR 2023): one beta-conditioned run against separate beta-VAE runs
(study: scales, the comparison, its table and figure, `run`). Its families, mr-mlp and mr-conv, are
rdvae's own (rdvae.presets)."""

from rdvae import register_study

from .study import DESCRIPTION, NAME, run

register_study(NAME, run, description=DESCRIPTION)
