"""Learning-rate schedules as a multiplier of the base rate, by optimizer step."""

from __future__ import annotations

import math

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
    raise ValueError(f"unknown learning-rate schedule {schedule!r}")
