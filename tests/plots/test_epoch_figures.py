"""The trackers' epoch figures reach the registry like a plugin's: the core registry names no plots
module, and registering them loads no matplotlib."""

import subprocess
import sys
from pathlib import Path

import rdvae
from rdvae.registry import EPOCH_FIGURES


def test_the_epoch_figures_are_registered_through_the_entry_point():
    assert {"reconstructions", "samples"} <= set(EPOCH_FIGURES.names())
    source = (Path(rdvae.__file__).parent / "registry.py").read_text()
    assert "rdvae.plots" not in source.replace("rdvae.plots.epoch_figures, a plugin", "")


def test_registering_them_imports_no_matplotlib():
    code = ("import sys, rdvae.plots.epoch_figures; "
            "assert 'matplotlib' not in sys.modules, sorted(m for m in sys.modules if 'matplotlib' in m)")
    subprocess.run([sys.executable, "-c", code], check=True)
