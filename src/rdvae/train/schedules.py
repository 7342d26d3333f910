"""Learning-rate schedules as a multiplier of the base rate, by optimizer step."""

from __future__ import annotations

import math
from collections.abc import Sequence

COSINE_WARMUP = 0.05   # fraction of the steps spent warming up (Bae et al.: 10 of 200 epochs)


def lr_factor(schedule: str, step: int, total_steps: int) -> float:
    """'constant': 1. 'paper' (Alemi et al., app. F.4): 1 for the first half of training,
    then linear decay reaching 0 at the last step. 'cosine' (Bae et al., app. C): linear
    warm-up over the first 5% of the steps, then cosine decay from 1 to 0 at the last step."""
    if schedule == "constant":
        return 1.0
    if schedule == "paper":
        half = total_steps / 2
        if step < half:
            return 1.0
        return max(0.0, (total_steps - step) / (total_steps - half))
    if schedule == "cosine":
        warmup = COSINE_WARMUP * total_steps
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = min(1.0, (step - warmup) / max(total_steps - warmup, 1))
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "plateau":
        raise ValueError("the 'plateau' schedule depends on the validation curve: use plateau_factor")
    raise ValueError(f"unknown learning-rate schedule {schedule!r}")


def plateau_factor(step: int, decay_from: int | None, decay_steps: int) -> float:
    """'plateau': 1 until the step the decay started at (None: not yet), then linear to 0 over
    `decay_steps` steps."""
    if decay_from is None or step < decay_from:
        return 1.0
    return max(0.0, 1.0 - (step - decay_from) / max(decay_steps, 1))


def plateau_improvement(values: Sequence[float], epochs: int) -> float | None:
    """How far the best of the last `epochs` values lies below the best of those before them
    (lower is better; negative when the last epochs are worse), or None with too few values."""
    if epochs < 1 or len(values) <= epochs:
        return None
    return min(values[:-epochs]) - min(values[-epochs:])


def plateaued(values: Sequence[float], epochs: int, nats: float) -> bool:
    """The plateau criterion: over the last `epochs` epochs the validation objective improved on its
    best before them by less than `nats`."""
    gain = plateau_improvement(values, epochs)
    return gain is not None and gain < nats
