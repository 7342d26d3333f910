"""Importance-weighted evaluation: rdvae's iw_log_likelihood against the implementation it replaced,
in one process, on the same model and data.

    OMP_WAIT_POLICY=PASSIVE RDVAE_DATA=/work/shared/data python benchmarks/iw_blocks.py
    python benchmarks/iw_blocks.py --samples 1000 --examples 16 --rows 500 1000 2000 4000 8192

"plain" is the code as it was before blocks were sized to the cache: 8192 (example, sample) rows per
decoder call, x copied once per sample (`x.expand(S, ...).reshape(S * B, ...)`) and
torch.distributions' Independent(Bernoulli).log_prob on the copy. "rdvae" is iw_log_likelihood with
the given `rows` (default: its own choice, `rows=None`) and the model's no-copy distortion. Calls
of all variants are interleaved round by round (order shuffled), so machine load hits them alike;
the table gives each one's median (example x sample) evaluations per second and its ratio to plain.

Exactness: with rows=8192 rdvae draws exactly plain's samples, so the two estimates must agree to
float rounding; the largest difference is printed. Other block sizes draw other samples (the same
estimator): their mean difference to plain is printed beside its Monte Carlo standard error.
Uses $RDVAE_DATA's binarized MNIST when present, else random binary images (an untrained model
either way: the speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import statistics
import time

import torch
from torch.distributions import Bernoulli, Independent

from rdvae.data import DataError, load_dataset
from rdvae.evaluate import iw_log_likelihood
from rdvae.evaluate.likelihood import default_rows
from rdvae.presets import build_model


@torch.inference_mode()
def plain_iw_log_likelihood(model, x: torch.Tensor, samples: int, rows: int = 8192) -> torch.Tensor:
    """iw_log_likelihood as of commit b3fe3b8 (with the distortion of VAE.distortion_of then)."""
    per_call = min(samples, rows)
    examples = max(1, rows // per_call)
    event_dims = x.dim() - 1
    out = []
    p = model.marginal_distribution()
    for start in range(0, len(x), examples):
        xb = x[start:start + examples]
        q = model.encoder(xb)
        total = torch.full((len(xb),), -math.inf, dtype=torch.float64)
        for done in range(0, samples, per_call):
            s = min(per_call, samples - done)
            z = q.sample((s,))
            logits = model.decoder(z.reshape(s * len(xb), -1)).base_dist.logits
            dist = Independent(Bernoulli(logits=logits, validate_args=False), event_dims, validate_args=False)
            x_rep = xb.unsqueeze(0).expand(s, *xb.shape).reshape(s * len(xb), *xb.shape[1:])
            distortion = -dist.log_prob(x_rep).reshape(s, len(xb))
            log_w = (-distortion + p.log_prob(z) - q.log_prob(z)).double()
            total = torch.logaddexp(total, torch.logsumexp(log_w, dim=0))
        out.append((total - math.log(samples)).float())
    return torch.cat(out)


def data(n: int) -> tuple[torch.Tensor, str]:
    try:
        return load_dataset("binarized-mnist", download=False).test[:n], "binarized-mnist test"
    except DataError:
        g = torch.Generator().manual_seed(0)
        return torch.rand(n, 1, 28, 28, generator=g).round(), "random binary 28x28"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", default="mlp")
    parser.add_argument("--samples", type=int, default=1000, help="importance samples k")
    parser.add_argument("--examples", type=int, default=16, help="test images per call")
    parser.add_argument("--rows", type=int, nargs="*", default=[1000, 2000, 8192],
                        help="block sizes to time besides the default")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    x, source = data(args.examples)
    torch.manual_seed(0)
    model = build_model(args.family, tuple(x.shape[1:])).eval()
    k, n = args.samples, len(x)
    chosen = default_rows(tuple(x.shape[1:]), torch.device("cpu"))
    variants = {"plain (rows 8192, copy of x)": lambda: plain_iw_log_likelihood(model, x, k)}
    variants[f"rdvae default (rows {chosen})"] = lambda: iw_log_likelihood(model, x, k)
    for rows in args.rows:
        variants[f"rdvae rows {rows}"] = lambda rows=rows: iw_log_likelihood(model, x, k, rows=rows)

    estimates = {}
    for name, run in variants.items():   # warm-up, and the estimates (same seed for each)
        torch.manual_seed(1)
        estimates[name] = run()
    times = {name: [] for name in variants}
    for _ in range(args.rounds):
        names = list(variants)
        random.shuffle(names)
        for name in names:
            start = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - start)

    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; data: {source}; model: {args.family}; k = {k}, "
          f"{n} examples, {args.rounds} rounds\n")
    print("| variant | (examples x samples)/s | ratio to plain | estimate - plain (mean over examples) |")
    print("|---|---|---|---|")
    plain_name = next(iter(variants))
    plain_rate = n * k / statistics.median(times[plain_name])
    plain_est = estimates[plain_name]
    result = {"samples": k, "examples": n, "family": args.family, "default_rows": chosen, "variants": {}}
    for name in variants:
        rate = n * k / statistics.median(times[name])
        diff = (estimates[name] - plain_est).double()
        se = diff.std().item() / math.sqrt(n) if n > 1 else math.nan
        note = f"{diff.mean().item():+.4f} ± {se:.4f} (largest {diff.abs().max().item():.2g})"
        print(f"| {name} | {rate:,.0f} | {rate / plain_rate:.2f} | {note} |")
        result["variants"][name] = {"rate": rate, "ratio": rate / plain_rate,
                                    "max_abs_difference": diff.abs().max().item()}
    return result


if __name__ == "__main__":
    main()
