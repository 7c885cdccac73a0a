"""Thresholds from held-out normal audio, scored through the runtime path the monitor uses."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import StreamaeError
from .scorer import DEFAULT_HOP_SECONDS, AnomalyModel

DEFAULT_PERCENTILE = 99.5


def calibrate(model: AnomalyModel, files: list[Path], percentile: float = DEFAULT_PERCENTILE,
              hop_seconds: float = DEFAULT_HOP_SECONDS) -> tuple[float, dict]:
    """Threshold = the `percentile` of held-out normal window scores; returns it and how it was made.

    A window percentile means about (100 - percentile) % of normal windows score above it,
    which the monitor's k-of-n hysteresis then turns into rare false alerts.
    """
    scores = np.concatenate([[w.score for w in model.file_window_scores(f, hop_seconds) if w.scored]
                             for f in files])
    if len(scores) == 0:
        raise StreamaeError("no held-out normal audio long enough to calibrate a threshold on")
    threshold = float(np.percentile(scores, percentile))
    return threshold, {
        "method": f"percentile {percentile} of held-out normal window scores",
        "percentile": percentile,
        "hop_seconds": hop_seconds,
        "windows": int(len(scores)),
        "files": len(files),
        "normal_scores": {
            k: round(float(v), 6)
            for k, v in {
                "mean": scores.mean(),
                "std": scores.std(),
                "p50": np.percentile(scores, 50),
                "p90": np.percentile(scores, 90),
                "p99": np.percentile(scores, 99),
                "max": scores.max(),
            }.items()
        },
    }
