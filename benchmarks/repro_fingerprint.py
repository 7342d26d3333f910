"""Every registered study's smoke scale (rdvae.registry.STUDIES: rdvae's own and installed plugins'), run
with its fixed seeds; the numbers each returns, as one JSON.

Used to show that a refactor leaves results unchanged: run it before and after, compare the files.

    python benchmarks/repro_fingerprint.py --out /tmp/before.json [--only multi-rate ...]
    python benchmarks/repro_fingerprint.py --out /tmp/after.json --compare /tmp/before.json
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import torch


def numbers(value, prefix=""):
    """Flatten the finite numbers of a nested result into {dotted.key: value}."""
    out = {}
    if isinstance(value, dict):
        for k, v in value.items():
            out.update(numbers(v, f"{prefix}{k}."))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            out.update(numbers(v, f"{prefix}{i}."))
    elif isinstance(value, bool):
        pass
    elif isinstance(value, int | float) and math.isfinite(value):
        out[prefix.rstrip(".")] = float(value)
    return out


TIMING = ("seconds", "wall", "time")


def studies() -> dict:
    """name -> run(scale, out, progress) of every study (rdvae.registry.STUDIES; before issue 28 the
    modules of rdvae.experiments, so that the same script fingerprints older commits)."""
    try:
        from rdvae.registry import STUDIES
    except ImportError:
        from rdvae.experiments import reproductions

        return {name: module.run for name, module in reproductions().items()}
    return {name: study.run for name, study in STUDIES.items()}


def one_thread() -> None:
    """Every torch thread count rdvae chooses (a sweep's workers take the free cores, which follow the
    machine's load) pinned to 1, so that a fingerprint does not depend on the load: reductions over
    other thread counts round differently (1e-5 nats in broken-elbo's grid)."""
    import rdvae.device

    torch.set_num_threads(1)
    rdvae.device.available_cores = lambda: 1


def main() -> int:

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--only", nargs="+", default=None, help="reproduction names (default: all)")
    parser.add_argument("--compare", default=None, help="a JSON written before: print the differences")
    args = parser.parse_args()
    one_thread()
    found = {}
    for name, run in studies().items():
        if args.only and name not in args.only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            started = time.monotonic()
            result = run("smoke", Path(tmp) / name, progress=False)
            seconds = time.monotonic() - started
        found[name] = {k: v for k, v in numbers(result).items()
                       if not any(t in k.lower() for t in TIMING)}
        print(f"{name}: {len(found[name])} numbers in {seconds:.0f} s", flush=True)
    Path(args.out).write_text(json.dumps(found, indent=1, sort_keys=True))
    if args.compare:
        before = json.loads(Path(args.compare).read_text())
        worst = 0.0
        for name, values in found.items():
            old = before.get(name, {})
            shared = sorted(set(values) & set(old))
            diffs = [abs(values[k] - old[k]) for k in shared]
            largest = max(diffs, default=0.0)
            worst = max(worst, largest)
            print(f"{name}: {len(shared)} numbers compared, largest difference {largest:.3g}; "
                  f"only before: {len(set(old) - set(values))}, only after: {len(set(values) - set(old))}")
        print(f"largest difference over all reproductions: {worst:.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
