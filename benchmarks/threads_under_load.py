"""Training speed with 1 and 2 torch threads while other processes compete for the cores.

OpenMP's default active spin-wait made a 2-thread training 30-40x slower than 1 thread when a
second process ran on a 2-core machine; rdvae's CLI sets OMP_WAIT_POLICY=PASSIVE unless the user
chose a policy. This measures steps per second of the `mlp` preset (batch 128, 28x28 binary data)
with 1 and 2 threads, each in a fresh interpreter (the policy is read when OpenMP starts), while
`--competitors` single-threaded processes keep multiplying matrices:

    python benchmarks/threads_under_load.py                       # PASSIVE (rdvae's default)
    python benchmarks/threads_under_load.py --policy ACTIVE       # OpenMP's default, for comparison

It prints each rate and the ratio 2 threads / 1 thread (target >= 0.9 under PASSIVE).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

STEPS = r"""
import sys, time, torch
from rdvae.presets import build_model
torch.set_num_threads(int(sys.argv[1]))
torch.manual_seed(0)
model = build_model("mlp", (1, 28, 28))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
x = torch.rand(128, 1, 28, 28).round()
def step():
    out = model(x)
    loss = (out.rate + out.distortion).mean()
    opt.zero_grad(); loss.backward(); opt.step()
for _ in range(5):
    step()
steps, start = int(sys.argv[2]), time.perf_counter()
for _ in range(steps):
    step()
print(steps / (time.perf_counter() - start))
"""

COMPETITOR = r"""
import torch
torch.set_num_threads(1)
a = torch.randn(512, 512)
while True:
    a = torch.tanh(a @ a) * 0.5
"""


def rate(threads: int, steps: int, policy: str) -> float:
    env = {**os.environ, "OMP_WAIT_POLICY": policy, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-c", STEPS, str(threads), str(steps)], env=env,
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100, help="timed steps per measurement (default 100)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating 1/2-thread rounds (default 3)")
    parser.add_argument("--competitors", type=int, default=1,
                        help="single-threaded busy processes running meanwhile (default 1)")
    parser.add_argument("--policy", default="PASSIVE", choices=("PASSIVE", "ACTIVE"),
                        help="OMP_WAIT_POLICY of the measured processes (default PASSIVE)")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    busy = [subprocess.Popen([sys.executable, "-c", COMPETITOR], env=env) for _ in range(args.competitors)]
    try:
        time.sleep(2.0)
        rates = {1: [], 2: []}
        for _ in range(args.rounds):
            for threads in (1, 2):
                rates[threads].append(rate(threads, args.steps, args.policy))
                print(f"{threads} thread(s), {args.policy}: {rates[threads][-1]:.1f} steps/s", flush=True)
    finally:
        for process in busy:
            process.kill()
    one, two = (sorted(rates[t])[len(rates[t]) // 2] for t in (1, 2))
    print(f"median: 1 thread {one:.1f}, 2 threads {two:.1f} steps/s; ratio 2/1 = {two / one:.2f} "
          f"({args.competitors} competing process(es), {os.cpu_count()} cores, "
          f"OMP_WAIT_POLICY={args.policy})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
