"""Thresholds from held-out normal audio, scored through the runtime path the monitor uses.

The default calibrates the alert rule itself for a false-alert rate: what raises an alert is
k of n consecutive scored windows above the threshold, i.e. an n-window run whose k-th
highest score ("run level") is above it. On held-out normal audio, played as it is and again
as a machine's day plays it (started and stopped from a quiet room with 1 s ramps, gain steps
of -14 and +6 dB), the run levels' upper tail is fitted with an exponential (a peaks-over-
threshold fit above their 90th percentile), which says how often a run would cross any
threshold, also beyond the held-out audio's length. The threshold is the higher of (a) where
that fit expects `false_alerts_per_hour` and (b) the highest run level seen, plus a margin of
`margin` tail scales (each one divides the expected rate by e) for what calibration did not see.
The expected rate counts every run above as an alert (runs of one alert overlap and the
cooldown merges more), so it is an upper bound. `percentile` keeps the old method (a
percentile of single windows of the held-out audio as recorded); the card states the
false-alert rate the fit expects at whichever threshold was chosen.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..audio import read_audio
from ..errors import StreamaeError
from .alerts import AlertPolicy, Hysteresis, WindowScore
from .scorer import DEFAULT_HOP_SECONDS, AnomalyModel

DEFAULT_PERCENTILE = 99.5  # the old method's default (--percentile)
DEFAULT_FALSE_ALERTS_PER_HOUR = 1 / 24  # one a day
DEFAULT_MARGIN = 1.0  # tail scales above the fit's threshold: an e-fold fewer alerts expected
TAIL_QUANTILE = 90.0  # the exponential is fitted to the run levels above this percentile


def run_levels(scores: list[WindowScore], policy: AlertPolicy) -> np.ndarray:
    """The k-th highest score of every n consecutive scored windows (runs never span a silent or
    transition window, as the monitor's k-of-n memory does not; a stretch of k to n-1 scored
    windows between two breaks is one run): `Hysteresis` alerts exactly where one is above."""
    out, chunk = [], []
    for w in scores + [WindowScore(0, 0, float("nan"), "silent")]:
        if w.scored:
            chunk.append(w.score)
            continue
        if len(chunk) >= policy.n:
            runs = np.lib.stride_tricks.sliding_window_view(np.array(chunk), policy.n)
            out.append(np.sort(runs, axis=1)[:, policy.n - policy.k])
        elif len(chunk) >= policy.k:  # the monitor alerts on k of fewer than n after a break, too
            out.append(np.sort(chunk)[-policy.k:][:1])
        chunk = []
    return np.concatenate(out) if out else np.zeros(0)


def count_alerts(streams: list[list[WindowScore]], threshold: float, policy: AlertPolicy) -> int:
    """How many alerts the monitor would raise on these window-score streams."""
    alerts = 0
    for ws in streams:
        h = Hysteresis(threshold, policy)
        alerts += sum(1 for w in ws if (e := h.update(w)) is not None and e["event"] == "anomaly_start")
    return alerts


def machine_day(x: np.ndarray, rate: int, normal_level_db: float | None) -> np.ndarray:
    """One held-out recording [channels, n] as a machine's day plays it: 1.5 s of a quiet room
    (white noise 22 dB under the machine's normal level), a 1 s start ramp (over the room), a
    -14 dB gain step a third in, +6 dB two thirds in, a 1 s stop ramp, the room again."""
    level = -40.0 if normal_level_db is None else normal_level_db
    rng = np.random.default_rng(0)

    def room(seconds: float) -> np.ndarray:
        return (10 ** ((level - 22) / 20) * rng.standard_normal((x.shape[0], int(seconds * rate)))).astype(
            np.float32)
    y = x.astype(np.float32).copy()
    n = y.shape[1]
    gain = np.ones(n, np.float32)
    gain[n // 3:] *= 10 ** (-14 / 20)
    gain[2 * n // 3:] *= 10 ** (6 / 20)
    ramp = min(rate, n // 4)
    gain[:ramp] *= np.linspace(0, 1, ramp)
    gain[n - ramp:] *= np.linspace(1, 0, ramp)
    noise = room(n / rate)
    noise[:, ramp:n - ramp] = 0.0  # the room is heard while the machine is off or ramping
    y = y * gain + noise
    return np.concatenate([room(1.5), y, room(1.5)], axis=1)


def held_out_scores(model: AnomalyModel, files: list[Path], hop_seconds: float,
                    day: bool = True) -> list[list[WindowScore]]:
    """Window scores of each file as it is and, with `day`, as `machine_day` plays it."""
    streams = []
    for f in files:
        x, rate = read_audio(f)
        variants = [x] + ([machine_day(x, rate, model.features.normal_level_db)] if day else [])
        for v in variants:
            s = model.stream(rate, v.shape[0], hop_seconds)
            streams.append(s.process(v) + s.flush())
    return streams


def calibrate(model: AnomalyModel, files: list[Path], percentile: float | None = None,
              hop_seconds: float = DEFAULT_HOP_SECONDS, policy: AlertPolicy = AlertPolicy(),
              false_alerts_per_hour: float = DEFAULT_FALSE_ALERTS_PER_HOUR,
              margin: float = DEFAULT_MARGIN) -> tuple[float, dict]:
    """The threshold, and how it was made (for the model card). See the module's docstring."""
    streams = held_out_scores(model, files, hop_seconds)
    scores = np.array([w.score for ws in streams for w in ws if w.scored])
    if len(scores) == 0:
        raise StreamaeError("no held-out normal audio long enough (and not silent) to calibrate a "
                            "threshold on")
    hours = len(scores) * hop_seconds / 3600
    how: dict = {"hop_seconds": hop_seconds, "windows": int(len(scores)), "files": len(files),
                 "held_out_hours": round(hours, 4)}
    levels = run_levels([w for ws in streams for w in ws + [_BREAK]], policy)
    threshold, tail = _for_rate(levels, hop_seconds, false_alerts_per_hour, margin)
    how.update(policy={"k": policy.k, "n": policy.n, "cooldown_s": policy.cooldown_s})
    if percentile is not None:
        plain = np.array([w.score for ws in streams[::2] for w in ws if w.scored])  # as recorded
        threshold = float(np.percentile(plain, percentile))
        how.update(method=f"percentile {percentile} of held-out normal window scores", percentile=percentile)
    else:
        how.update(
            method=(f"k-of-n rule ({policy.k} of {policy.n}) calibrated for {false_alerts_per_hour:.4g} "
                    "false alerts per hour on held-out normal audio, as it is and with starts, stops and "
                    f"gain steps, plus a margin of {margin:g} tail scale(s)"),
            target_false_alerts_per_hour=false_alerts_per_hour, margin=margin)
    tail.pop("expected_per_hour")
    how.update(tail=tail, expected_false_alerts_per_hour=expected_rate(threshold, tail, hop_seconds),
               held_out_false_alerts=count_alerts(streams, threshold, policy))
    how["normal_scores"] = {k: round(float(v), 6) for k, v in {
        "mean": scores.mean(), "std": scores.std(), "p50": np.percentile(scores, 50),
        "p90": np.percentile(scores, 90), "p99": np.percentile(scores, 99), "max": scores.max()}.items()}
    return threshold, how


_BREAK = WindowScore(0, 0, float("nan"), "silent")  # streams are not joined into one run


def expected_rate(threshold: float, tail: dict, hop_seconds: float) -> float:
    """False alerts per hour the tail fit expects at `threshold` (an upper bound: every run above
    counts). Below the fitted range it is the observed rate of runs above, at most one a run."""
    runs_per_hour = 3600 / hop_seconds
    if threshold <= tail["u"]:
        return runs_per_hour * tail["fraction_above_u"]
    return runs_per_hour * tail["fraction_above_u"] * math.exp(-(threshold - tail["u"]) / tail["scale"])


def _for_rate(levels: np.ndarray, hop_seconds: float, per_hour: float, margin: float) -> tuple[float, dict]:
    if len(levels) < 20:
        raise StreamaeError(f"too little held-out normal audio to calibrate an alert rate on "
                            f"({len(levels)} runs)")
    runs_per_hour = 3600 / hop_seconds
    u = float(np.percentile(levels, TAIL_QUANTILE))
    over = levels[levels > u] - u
    scale = max(float(over.mean()) if len(over) else 0.0, 1e-3)
    p_u = len(over) / len(levels)
    at_rate = u + scale * math.log(max(p_u * runs_per_hour / per_hour, 1.0))
    threshold = max(at_rate, float(levels.max())) + margin * scale
    expected = runs_per_hour * p_u * math.exp(-(threshold - u) / scale)
    return threshold, {"runs": int(len(levels)), "u": round(u, 6), "scale": round(scale, 6),
                       "fraction_above_u": round(p_u, 6), "max_run_level": round(float(levels.max()), 6),
                       "threshold_for_target": round(at_rate, 6), "expected_per_hour": expected}
