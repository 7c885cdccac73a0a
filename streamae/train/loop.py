"""What every training loop here shares: the budget, the learning-rate schedule, checkpoints.

Runs stop at whichever budget is spent first (wall-clock minutes or steps) and follow one
schedule over that budget, so a run resumed from its checkpoint continues the same curve.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch

FLOOR = 0.05  # the cosine ends at 5 % of the peak rate, not zero


def progress(elapsed_s: float, minutes: float, step: int, steps: int) -> float:
    """Fraction of the budget spent: the larger of time and steps (a zero budget does not count)."""
    return max(elapsed_s / (60 * minutes) if minutes > 0 else 0.0, step / steps if steps > 0 else 0.0)


def learning_rate(peak: float, step: int, progress: float, warmup_steps: int) -> float:
    """Linear warm-up over `warmup_steps`, then a cosine from `peak` down to FLOOR * peak."""
    warmup = min(1.0, (step + 1) / warmup_steps)
    return peak * warmup * (FLOOR + (1 - FLOOR) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def save_checkpoint(payload: dict, path: Path) -> None:
    """Write beside and rename: an interrupted save never leaves a broken checkpoint behind."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
