"""rdvae's paper studies: one folder per paper, built only from rdvae's public API and core modules,
registered the way a plugin registers (this package is a plugin of the entry-point group
`rdvae.plugins`, declared in rdvae's pyproject.toml; the core imports none of it).

A study folder holds what only that paper needs: its scales, the models, families and trainers only it
uses (registered with rdvae.register_family, register_encoder, ...), its claims, tables and figures,
and registers its run with `rdvae.register_study`:

    register_study("elbo-surgery", run, description="one line")
    def run(scale: str, out: Path, progress: bool = True, **options) -> dict: ...

`run` writes its tables, figures and results under `out` and returns the figures it measured.
Scales: `smoke` (seconds, used by tests), `cpu` (a reduced but faithful version that finishes on 2
cores), `paper` (the paper's sizes, for a GPU). `rdvae repro` lists and runs what is registered, a
user's own studies (a plugin) beside these. Helpers every study shares (a claims table, markdown
tables, CSV rows) are in rdvae.studies.common.

Importing this package registers every study; it stays cheap (torch, no matplotlib or scipy): the
registries import it on their first lookup, e.g. for `rdvae train`.
"""

from __future__ import annotations

from . import (  # noqa: F401 - each registers its study, families and components
    broken_elbo,
    elbo_surgery,
    expfam_toy,
    gan_decoder,
    multi_rate,
    semantic_hashing,
    sigma_vae,
)
