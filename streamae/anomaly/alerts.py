"""From window scores to alerts: k-of-n hysteresis with a cooldown, and where alerts go.

One fault should be one alert, not a storm: an alert starts when k of the last n windows
are above the threshold, ends when k of the last n are below it, and a new one cannot start
until `cooldown_s` after the previous one ended. Webhooks are posted from a background
thread with a timeout and retries, so a slow or dead endpoint never holds up the audio.
"""
from __future__ import annotations

import json
import queue
import sys
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence, TextIO

import numpy as np

from ..errors import StreamaeError


@dataclass(frozen=True)
class WindowScore:
    """One window's anomaly score: what the scorer makes and the alert rules read.

    `state` is "running" (scored), "silent" (the machine off) or "transition" (partly
    silent: starting or stopping); the last two have no score (NaN) and never alert.
    `level_db` is the window's level (dB re full-scale white noise, see features.frame_levels)."""
    start_s: float
    end_s: float
    score: float
    state: str = "running"
    level_db: float | None = None

    @property
    def scored(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class AlertPolicy:
    k: int = 3
    n: int = 4
    cooldown_s: float = 30.0

    def __post_init__(self):
        if not 1 <= self.k <= self.n:
            raise StreamaeError(f"need 1 <= k <= n for k-of-n alerts, got k={self.k}, n={self.n}")
        if self.cooldown_s < 0:
            raise StreamaeError(f"cooldown must be >= 0 s, got {self.cooldown_s}")


def alert_level(scores: Sequence[float], policy: AlertPolicy = AlertPolicy()) -> float:
    """The highest threshold at which `policy` would start an alert on these window scores.

    That is the largest, over every run of n consecutive windows, of the run's k-th highest
    score, so `alert_level(scores) > threshold` exactly when `Hysteresis` alerts. A
    recording shorter than n windows is one run; shorter than k (where `Hysteresis` can never
    alert), all its windows must be above, so a short clip can still be judged.
    """
    x = np.asarray(scores, np.float64)
    if len(x) == 0:
        raise StreamaeError("no window scores to judge")
    n = min(policy.n, len(x))
    k = min(policy.k, n)
    runs = np.lib.stride_tricks.sliding_window_view(x, n)
    return float(np.sort(runs, axis=1)[:, n - k].max())


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Hysteresis:
    """Feed window scores in order; get anomaly_start / anomaly_end events (dicts) back.

    Only scored (running) windows count: a silent or transition window empties the k-of-n
    memory, so an alert needs k of n windows of the machine running without a break, and
    ends an open alert (reason "machine silent"). `value` picks what is compared with the
    threshold (the score; the level for level alerts) and `kind` names the events."""

    def __init__(self, threshold: float, policy: AlertPolicy = AlertPolicy(), kind: str = "anomaly",
                 value: Callable[[WindowScore], float] = lambda w: w.score):
        self.threshold, self.policy, self.kind, self.value = threshold, policy, kind, value
        self._recent: deque[WindowScore] = deque(maxlen=policy.n)
        self._active: dict | None = None  # the open alert: onset, peak
        self._ended_at = -float("inf")

    @property
    def active(self) -> bool:
        return self._active is not None

    def update(self, w: WindowScore) -> dict | None:
        if not w.scored:
            self._recent.clear()
            return self._end(w, reason="machine silent") if self._active is not None else None
        self._recent.append(w)
        above = [r for r in self._recent if self.value(r) > self.threshold]
        if self._active is None:
            cooled = w.end_s - self._ended_at >= self.policy.cooldown_s
            if len(above) >= self.policy.k and cooled:
                self._active = {"onset_s": above[0].start_s, "offset_s": w.end_s, "peak": self.value(w)}
                return self._event(f"{self.kind}_start", w, onset_s=round(above[0].start_s, 3))
            return None
        self._active["peak"] = max(self._active["peak"], self.value(w))
        if len(self._recent) - len(above) >= self.policy.k:
            return self._end(w)
        return None

    def close(self, last: WindowScore | None) -> dict | None:
        """At the end of the stream an open alert ends too (so every start has its end)."""
        if self._active is None or last is None:
            return None
        return self._end(last, reason="stream ended")

    def _end(self, w: WindowScore, **extra) -> dict:
        started = self._active
        self._active, self._ended_at = None, w.end_s
        peak = "peak_score" if self.kind == "anomaly" else f"peak_{self.kind}_db"
        return self._event(f"{self.kind}_end", w, duration_s=round(w.end_s - started["offset_s"], 3),
                           **{peak: round(started["peak"], 6)}, **extra)

    def _event(self, kind: str, w: WindowScore, **extra) -> dict:
        value = self.value(w)
        event = {"event": kind, "time": now_iso(), "offset_s": round(w.end_s, 3),
                 "score": None if np.isnan(w.score) else round(w.score, 6),
                 "threshold": round(self.threshold, 6), **extra}
        if self.kind != "anomaly":
            event[f"{self.kind}_db"] = None if value is None or np.isnan(value) else round(value, 2)
        return event


class JsonLines:
    """Appends one JSON object per line to an open text stream or a file, flushed at once."""

    def __init__(self, target: TextIO | str | Path):
        self._owned = not hasattr(target, "write")
        if self._owned:
            path = Path(target)
            if not path.parent.is_dir():
                raise StreamaeError("folder does not exist", path.parent)
            target = open(path, "a", encoding="utf-8")
        self._out = target

    def __call__(self, obj: dict) -> None:
        self._out.write(json.dumps(obj) + "\n")
        self._out.flush()

    def close(self) -> None:
        if self._owned:
            self._out.close()


class Webhook:
    """POSTs each alert as JSON from a background thread: timeout, retries with backoff,
    a bounded queue (the oldest undelivered alerts are dropped first), never blocking."""

    def __init__(self, url: str, timeout_s: float = 3.0, retries: int = 3, backoff_s: float = 0.5,
                 max_queue: int = 100, log: Callable[[str], None] | None = None):
        if not url.startswith(("http://", "https://")):
            raise StreamaeError(f"--webhook must be an http:// or https:// URL, got {url!r}")
        self.url, self.timeout_s, self.retries, self.backoff_s = url, timeout_s, retries, backoff_s
        self.delivered = self.failed = self.dropped = 0
        self._log = log or (lambda msg: print(f"streamae: webhook: {msg}", file=sys.stderr, flush=True))
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="streamae-webhook", daemon=True)
        self._thread.start()

    def __call__(self, event: dict) -> None:
        while True:
            try:
                self._queue.put_nowait(event)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def close(self, wait_s: float = 5.0) -> None:
        """Give queued alerts up to `wait_s` to go out, then stop waiting (the thread is a daemon)."""
        self._queue.put(None)
        self._thread.join(wait_s)

    def _run(self) -> None:
        while (event := self._queue.get()) is not None:
            self._deliver(event)

    def _deliver(self, event: dict) -> None:
        body = json.dumps(event).encode()
        for attempt in range(self.retries + 1):
            try:
                req = urllib.request.Request(self.url, data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
                    r.read()
                self.delivered += 1
                return
            except Exception as e:  # URLError, HTTPError, timeouts, resets: all just mean "not delivered"
                error = e
            time.sleep(self.backoff_s * 2 ** attempt)
        self.failed += 1
        self._log(f"gave up on a {event.get('event')} alert after {self.retries + 1} tries ({error})")
