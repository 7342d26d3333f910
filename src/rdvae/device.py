"""Device and numeric-precision choices shared by training and evaluation."""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("fp32", "bf16", "auto")


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' picks CUDA when present, else the CPU; anything else is passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use 'auto' or 'cpu'")
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
