"""benchmarks/repro_fingerprint.py for a checkout from before issue 28 (no rdvae.studies), run from
that checkout's root with its src first on PYTHONPATH and this environment's rdvae installed.

The installed distribution's entry point names rdvae.studies, which an old tree lacks, so the entry-point
plugins are marked as loaded (the old tree's own registries load its built-ins by module name):

    cp benchmarks/repro_fingerprint.py benchmarks/fingerprint_old_tree.py OLD/benchmarks/
    cd OLD && PYTHONPATH=OLD/src python benchmarks/fingerprint_old_tree.py --out /tmp/old.json
"""

import runpy
import sys
from pathlib import Path

import rdvae.plugins

rdvae.plugins._entry_points_loaded = True
sys.argv = ["repro_fingerprint.py", *sys.argv[1:]]
runpy.run_path(str(Path(__file__).with_name("repro_fingerprint.py")), run_name="__main__")
