"""Training and IW-NLL throughput of the MLP family on binarized MNIST, as a fraction of the
matrix-multiply rate measured in the same process; fp32 against bf16.

    python benchmarks/throughput.py                 # throughput, fp32 and bf16
    python benchmarks/throughput.py --quality 10    # also train 10 epochs in each precision
                                                    # and compare test ELBO and IW-NLL (k=1000)

Uses $RDVAE_DATA's binarized MNIST when present, else random binary images of the same shape
(throughput only). Prints a markdown table; docs/results/benchmarks.md records one run.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from rdvae.data import DataError, load_dataset
from rdvae.device import autocast
from rdvae.evaluate import iw_log_likelihood
from rdvae.objectives import BetaObjective
from rdvae.presets import build_model
from rdvae.train import TrainConfig, train
from rdvae.train.loop import make_adam


def matmul_rate(precision: str, n: int = 1024, seconds: float = 2.0) -> float:
    """FLOP/s of an n x n x n matrix product through F.linear, under the same autocast as
    training (so bf16 goes through the same kernels the model uses)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    count, start = -1, 0.0
    with autocast(precision, torch.device("cpu")):
        while count < 0 or time.perf_counter() - start < seconds:
            torch.nn.functional.linear(a, b)
            if count < 0:
                start = time.perf_counter()
            count += 1
    return 2 * n**3 * count / (time.perf_counter() - start)


def data():
    try:
        ds = load_dataset("binarized-mnist", download=False)
        return ds.train, ds.test, "binarized-mnist"
    except DataError:
        g = torch.Generator().manual_seed(0)
        return (torch.rand(50_000, 1, 28, 28, generator=g).round(),
                torch.rand(10_000, 1, 28, 28, generator=g).round(), "random binary 28x28")


def training_rate(x: torch.Tensor, precision: str, batch: int, seconds: float) -> tuple[float, float]:
    """(examples/s, FLOP/s) of full training steps: forward, backward, Adam."""
    torch.manual_seed(0)
    model = build_model("mlp", (1, 28, 28))
    opt = make_adam(model.parameters(), 1e-3, torch.device("cpu"))
    objective = BetaObjective(1.0)

    def step(i):
        xb = x[(i * batch) % (len(x) - batch):][:batch]
        with autocast(precision, torch.device("cpu")):
            out = model(xb)
            loss = objective(out.rate.float(), out.distortion.float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with FlopCounterMode(display=False) as counter:
        step(0)
    flops_per_step = counter.get_total_flops()
    for i in range(5):
        step(i)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step(count)
        count += 1
    elapsed = time.perf_counter() - start
    return count * batch / elapsed, count * flops_per_step / elapsed


def iw_rate(x: torch.Tensor, precision: str, k: int, n: int) -> float:
    torch.manual_seed(0)
    model = build_model("mlp", (1, 28, 28)).eval()
    iw_log_likelihood(model, x[:2], k, precision=precision)
    start = time.perf_counter()
    iw_log_likelihood(model, x[:n], k, precision=precision)
    return n * k / (time.perf_counter() - start)


def quality(epochs: int, precision: str, k: int) -> dict:
    config = TrainConfig(dataset="binarized-mnist", family="mlp", epochs=epochs, precision=precision,
                         iw_samples=k, seed=0)
    with tempfile.TemporaryDirectory() as out:
        return train(config, out, progress=False)


def throughput_table(args, train_x, test_x) -> None:
    print("| precision | matmul GFLOP/s | train examples/s | train GFLOP/s | fraction of matmul "
          "| IW (examples x samples)/s |")
    print("|---|---|---|---|---|---|")
    rates = {}
    for precision in ("fp32", "bf16"):
        mm = matmul_rate(precision)
        ex, fl = training_rate(train_x, precision, args.batch_size, args.seconds)
        iw = iw_rate(test_x, precision, args.iw_samples, args.iw_examples)
        rates[precision] = (mm, ex, fl, iw)
        print(f"| {precision} | {mm / 1e9:.1f} | {ex:.0f} | {fl / 1e9:.1f} | {fl / mm:.2f} | {iw:.0f} |")
    fp32, bf16 = rates["fp32"], rates["bf16"]
    print(f"\nbf16 / fp32: matmul {bf16[0] / fp32[0]:.2f}x, training {bf16[1] / fp32[1]:.2f}x, "
          f"IW {bf16[3] / fp32[3]:.2f}x")
    print(f"training FLOP rate / fp32 matmul rate: {fp32[2] / fp32[0]:.2f}")


def quality_table(epochs: int, k: int) -> None:
    print(f"\nquality after {epochs} epochs (test split, IW k={k}):\n")
    print("| precision | ELBO | IW-NLL | train seconds |")
    print("|---|---|---|---|")
    for precision in ("fp32", "bf16"):
        s = quality(epochs, precision, k)
        print(f"| {precision} | {s['elbo']:.2f} ± {s['elbo_se']:.2f} | "
              f"{s['iw_nll']:.2f} ± {s['iw_nll_se']:.2f} | {s['train_seconds']:.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="timing window per measurement")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--iw-samples", type=int, default=1000)
    parser.add_argument("--iw-examples", type=int, default=50)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--quality", type=int, default=0, metavar="EPOCHS",
                        help="also train this many epochs in fp32 and bf16 and compare")
    args = parser.parse_args()

    train_x, test_x, source = data()
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    print(f"data: {source}; model: mlp preset; batch {args.batch_size}\n", flush=True)
    if not args.skip_throughput:
        throughput_table(args, train_x, test_x)
    if args.quality:
        quality_table(args.quality, args.iw_samples)


if __name__ == "__main__":
    main()
