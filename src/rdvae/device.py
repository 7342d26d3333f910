"""Device and numeric-precision choices shared by training and evaluation."""

from __future__ import annotations

import contextlib
import os
import re
import sys

import torch

PRECISIONS = ("fp32", "bf16", "auto")
SEED_MAX = 2**32 - 1   # the largest seed: torch's and NumPy's generators take it (and seed + 1)


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def free_cores() -> int:
    """Cores not busy with other work: the cores minus the 1-minute load average, at least 1.
    (Threads beyond the free cores make OpenMP's workers wait on each other.)"""
    cores = available_cores()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - Windows
        load = 0.0
    return max(1, min(cores, int(cores - load + 0.5)))


def set_threads(threads: int | None = None) -> int:
    """Use `threads` torch threads (None: the free cores, divided among the processes torchrun or srun started
    on this node); returns the number set. More threads than
    the cores this process may run on only make OpenMP's workers wait on each other (an epoch
    hundreds of times slower), so a larger number is lowered to the cores, with one line on stderr."""
    if threads is None:   # the free cores, shared by the processes torchrun (or srun) started on this node
        from .engine.distributed import local_processes

        threads = max(1, free_cores() // local_processes())
    if not (isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1):
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
    cores = available_cores()
    if threads > cores:
        print(f"rdvae: --threads {threads} is more than the {cores} cores; using {cores}", file=sys.stderr)
        threads = cores
    torch.set_num_threads(threads)
    return threads


DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


def check_device(device) -> str:
    """The validated device name: auto, cpu, cuda, cuda:N or mps (ConfigError otherwise)."""
    from .errors import ConfigError

    if not (isinstance(device, str) and DEVICE_PATTERN.fullmatch(device)):
        raise ConfigError(f"device must be auto, cpu, cuda, cuda:N or mps, got {device!r}")
    return device


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' picks CUDA when present, else the CPU; cpu, cuda, cuda:N and mps as named."""
    from .errors import ConfigError

    if check_device(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available; use 'auto' or 'cpu'")
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {device!r} requested but MPS is not available; use 'auto' or 'cpu'")
    return resolved


def native_bf16(device: torch.device) -> bool:
    """Whether the device multiplies bfloat16 natively (CUDA with bf16 support; a CPU with
    AVX-512-BF16 or AMX). Elsewhere bf16 is emulated and several times slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    capability = torch.backends.cpu.get_cpu_capability().upper()
    return "AMX" in capability or "BF16" in capability


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> 'bf16' where the device has native bf16, else 'fp32'. bf16 changed the test
    ELBO and IW-NLL of a 3-epoch MLP VAE by 0.14 nats, within their Monte Carlo error of 0.3
    (docs/results/benchmarks.md)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def autocast(precision: str, device: torch.device):
    """bf16: autocast matmuls and convolutions to bfloat16 (weights stay fp32, likelihoods and
    reductions are taken in fp32 by the components); fp32: a no-op context; auto: bf16 where
    the device has native bf16."""
    if resolve_precision(precision, device) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | None = None):
    """Run a block with its own seeded RNG and restore the caller's RNG state afterwards,
    so an evaluation never shifts the random stream of the training it interrupts."""
    devices = [device.index or 0] if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
