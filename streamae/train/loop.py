"""What every training loop here shares: the budget, the learning-rate schedule, checkpoints.

Runs stop at whichever budget is spent first (wall-clock minutes or steps) and follow one
schedule over that budget, so a run resumed from its checkpoint continues the same curve,
including a run stopped early on purpose (`GracefulStop`) to go on in a later sitting.
"""
from __future__ import annotations

import math
import os
import signal
import threading
import time
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


class GracefulStop:
    """Ends a long run between two steps, so it can checkpoint and the same command resumes it:
    on SIGTERM or Ctrl-C (a second one stops at once), or when this sitting has lasted
    `after_minutes` (0: no limit), e.g. to fit a run longer than one session into several."""

    def __init__(self, after_minutes: float = 0.0):
        self.deadline = time.time() + 60 * after_minutes if after_minutes > 0 else math.inf
        self.signal: str | None = None
        self._previous: dict = {}

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():  # Python allows handlers only there
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name

    @property
    def reason(self) -> str | None:
        """Why the run should stop now, or None to go on."""
        if self.signal:
            return self.signal
        return "--stop-after" if time.time() >= self.deadline else None
