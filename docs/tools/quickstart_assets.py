"""Make the quickstart's output and figures that the site shows (docs/assets/quickstart/):

    python docs/tools/quickstart_assets.py          # about a minute on two CPU cores

runs `rdvae quickstart` in a temporary folder, as a new user would (`--no-progress`, one torch thread
per worker), and copies its printed table (output.txt) and its four PNG figures into
docs/assets/quickstart/. Every run is seeded and the CPU path deterministic, so running it again
gives the same numbers (docs/results/quickstart.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "quickstart"
FIGURES = ("rd_plane", "elbo_rate", "reconstructions", "samples")


def main() -> int:
    ASSETS.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as folder:
        result = subprocess.run([sys.executable, "-m", "rdvae", "quickstart", "--no-progress"], cwd=folder,
                                env=env, text=True, capture_output=True)
        if result.returncode != 0:
            print(result.stdout, result.stderr, file=sys.stderr)
            return result.returncode
        (ASSETS / "output.txt").write_text("$ rdvae quickstart\n" + result.stdout, encoding="utf-8")
        for name in FIGURES:
            shutil.copyfile(Path(folder) / "runs" / "quickstart" / "figures" / f"{name}.png",
                            ASSETS / f"{name}.png")
    print(f"wrote {ASSETS}: output.txt, " + ", ".join(f"{n}.png" for n in FIGURES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
