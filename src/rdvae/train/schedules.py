"""Learning-rate schedules as a multiplier of the base rate, by optimizer step."""

from __future__ import annotations


def lr_factor(schedule: str, step: int, total_steps: int) -> float:
    """'constant': 1. 'paper' (Alemi et al., app. F.4): 1 for the first half of training,
    then linear decay reaching 0 at the last step."""
    if schedule == "constant":
        return 1.0
    if schedule == "paper":
        half = total_steps / 2
        if step < half:
            return 1.0
        return max(0.0, (total_steps - step) / (total_steps - half))
    raise ValueError(f"unknown learning-rate schedule {schedule!r}")
