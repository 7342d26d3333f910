"""Your own data on the command line: `rdvae train --dataset PATH`, then `rdvae eval RUN`.

Writes three data sets into --out, from scikit-learn's bundled 8x8 digits and a synthetic table,
and runs the CLI on each:

- digits-binary.npz   binary images (grey levels > 8 of 16), explicit splits x_train / x_valid /
                      x_test with labels y_*; family mlp (Bernoulli decoder)
- digits-png/         grey PNG images in class sub-folders 0/ ... 9/ (split by the seeded fractions
                      data.valid_fraction / data.test_fraction); family mlp with --binarize dynamic,
                      after showing that the Bernoulli decoder is refused on grey levels kept as
                      they are (--set binarize=null; the default, "auto", binarizes them dynamically)
- table.npy           real values [N, 12] (a 2-D latent through a random nonlinear map, plus noise);
                      family mlp-gauss (Gaussian decoder)

Each run records its data file's SHA-256 in config.json; `rdvae eval` and --resume check it.
About 30 s on one CPU core:

    python examples/own_data.py --out runs/own-data
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits


def write_npz(path: Path) -> Path:
    digits = load_digits()
    x, y = (digits.images > 8).astype(np.uint8), digits.target   # uint8 0/1: taken as binary
    np.savez(path, x_train=x[:1400], y_train=y[:1400], x_valid=x[1400:1600], y_valid=y[1400:1600],
             x_test=x[1600:], y_test=y[1600:])
    return path


def write_pngs(folder: Path) -> Path:
    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        grey = np.round(image * 255 / 16).astype(np.uint8)              # 0..16 -> 0..255
        Image.fromarray(grey, mode="L").save(folder / str(label) / f"{i:04d}.png")
    return folder


def write_table(path: Path, n: int = 2000, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 2))
    x = np.tanh(z @ rng.standard_normal((2, 12))) + 0.05 * rng.standard_normal((n, 12))
    np.save(path, x.astype(np.float32))
    return path


def rdvae(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run `python -m rdvae ARGS` (the same as `rdvae ARGS`), printing the command first."""
    print("$ rdvae " + shlex.join(args), flush=True)
    result = subprocess.run([sys.executable, "-m", "rdvae", *args], text=True, capture_output=True)
    if check and result.returncode != 0:
        print(result.stdout + result.stderr, file=sys.stderr)
        result.check_returncode()
    return result


def last_json(result: subprocess.CompletedProcess) -> dict:
    """With --json a command prints one JSON object as its last line."""
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/own-data")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--iw-samples", type=int, default=100)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # kept when present (replace them with your own): a run records its data's SHA-256, and
    # `rdvae eval` / --resume refuse a run whose data changed since
    npz, pngs, table = out / "digits-binary.npz", out / "digits-png", out / "table.npy"
    for path, write in ((npz, write_npz), (pngs, write_pngs), (table, write_table)):
        if not path.exists():
            write(path)
    print(f"data: {npz}, {pngs}/ (1797 PNGs in 10 class folders), {table}\n")

    # grey levels kept as they are under a Bernoulli decoder: refused (D would not be a log-likelihood)
    refused = rdvae("train", "--dataset", str(pngs), "--family", "mlp", "--epochs", "1",
                    "--set", "binarize=null", "--out", str(out / "refused"), check=False)
    print(textwrap.fill(f"exit {refused.returncode}: {refused.stderr.strip().splitlines()[-1]}", 100,
                        initial_indent="  ", subsequent_indent="  ") + "\n")

    common = ["--epochs", str(args.epochs), "--latent-dim", "8", "--set", "model.hidden=[256]",
              "--no-progress", "--json"]
    runs = {
        "npz": (npz, ["--family", "mlp"]),
        "png": (pngs, ["--family", "mlp", "--binarize", "dynamic",
                       "--set", "data.valid_fraction=0.1", "--set", "data.test_fraction=0.2"]),
        "table": (table, ["--family", "mlp-gauss"]),
    }
    rows = []
    for name, (data, options) in runs.items():
        run_dir = out / "runs" / name
        if not (run_dir / "summary.json").exists():
            rdvae("train", "--dataset", str(data), *options, *common, "--out", str(run_dir))
        result = last_json(rdvae("eval", str(run_dir), "--iw-samples", str(args.iw_samples),
                                 "--no-progress", "--json"))
        config = json.loads((run_dir / "config.json").read_text())
        rows.append({"data": data.name, "family": config["family"], "sha256": config["dataset_sha256"],
                     **result})

    print(f"\n{'data':<18}{'family':<11}{'examples':>9}{'R':>9}{'D':>9}{'-ELBO':>9}{'IW-NLL':>9}"
          f"{'I_q':>8}  SHA-256 (recorded)")
    for r in rows:
        print(f"{r['data']:<18}{r['family']:<11}{r['examples']:>9}{r['rate']:>9.3f}{r['distortion']:>9.3f}"
              f"{-r['elbo']:>9.3f}{r['iw_nll']:>9.3f}{r['mutual_info']:>8.3f}  {r['sha256'][:16]}...")
    print("nats per example on each test split; for table.npy D and IW-NLL are densities (can be < 0)")


if __name__ == "__main__":
    main()
