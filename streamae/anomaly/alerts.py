"""From window scores to alerts: k-of-n hysteresis with a cooldown, and where alerts go.

One fault should be one alert, not a storm: an alert starts when k of the last n windows
are above the threshold, ends when k of the last n are below it, and a new one cannot start
until `cooldown_s` after the previous one ended. Webhooks are delivered at least once, from
an on-disk outbox by a background thread, so a slow or dead endpoint never holds up the audio
and an alert is never lost on its way (see `Webhook`).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
import urllib.request
import uuid
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


ALERT_EVENTS = ("anomaly_start", "anomaly_end", "level_start", "level_end")  # what a webhook posts
DEFAULT_RETRY_S = 300.0  # how long one alert is retried before it waits for the next run


def default_outbox(url: str) -> Path:
    """Where a webhook's undelivered alerts wait: $XDG_STATE_HOME (~/.local/state)/streamae/outbox/,
    one folder per URL, so a restarted monitor finds and sends them."""
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "streamae" / "outbox" / hashlib.sha1(url.encode()).hexdigest()[:12]


class Webhook:
    """At-least-once delivery of alerts to a URL, as JSON POSTs from a background thread.

    Each alert is first written to the on-disk `outbox` (one file per alert, written whole or
    not at all) and removed from it only once the receiver answered 2xx, so alerts survive a
    crash or a restart: a new Webhook on the same outbox sends what an earlier run left there.
    A failed POST is retried with exponential backoff (`backoff_s` doubling up to
    `max_backoff_s`) for `retry_s` from the alert's creation; then the alert is parked (still in
    the outbox) and tried again after the next successful delivery, or by the next run. Every
    alert carries an `id` (also sent as the Idempotency-Key header): receivers drop duplicates
    by it. Calling the webhook writes a small file and never waits for the network. `close()`
    waits for the backlog (at most until each alert's retry time is over, or `wait_s`) and
    returns how many alerts are still undelivered."""

    def __init__(self, url: str, outbox: str | Path | None = None, retry_s: float = DEFAULT_RETRY_S,
                 timeout_s: float = 10.0, backoff_s: float = 1.0, max_backoff_s: float = 30.0,
                 log: Callable[[str], None] | None = None):
        if not url.startswith(("http://", "https://")):
            raise StreamaeError(f"--webhook must be an http:// or https:// URL, got {url!r}")
        if retry_s < 0:
            raise StreamaeError(f"webhook retry time must be >= 0 s, got {retry_s}")
        self.url, self.timeout_s, self.retry_s = url, timeout_s, retry_s
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.delivered = self.failed = 0  # failed: alerts whose retry time ran out (they stay in the outbox)
        self._log = log or (lambda msg: print(f"streamae: webhook: {msg}", file=sys.stderr, flush=True))
        self.outbox = Path(outbox) if outbox is not None else None
        self._lock = threading.Condition()
        self._pending: deque[dict] = deque()  # {"event", "file", "deadline"}
        self._parked: list[dict] = []
        self._closing = False
        self._seq = 0
        if self.outbox is not None:
            try:
                self.outbox.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StreamaeError(f"cannot create the webhook outbox ({e.strerror})", self.outbox) from None
            self._load_outbox()
        self._thread = threading.Thread(target=self._run, name="streamae-webhook", daemon=True)
        self._thread.start()

    @property
    def undelivered(self) -> int:
        with self._lock:
            return len(self._pending) + len(self._parked)

    def __call__(self, event: dict) -> None:
        if event.get("event") not in ALERT_EVENTS:
            return  # state events (machine_silent, ...) are for the log, not for a pager
        event = {**event, "id": event.get("id") or uuid.uuid4().hex}
        item = {"event": event, "file": self._store(event), "deadline": time.monotonic() + self.retry_s}
        with self._lock:
            self._pending.append(item)
            self._lock.notify_all()

    def close(self, wait_s: float | None = None) -> int:
        """Let the backlog go out (until each alert's retry time is over, or `wait_s`), stop, and
        return how many alerts were not delivered (still in the outbox for the next run)."""
        deadline = time.monotonic() + (self.retry_s if wait_s is None else wait_s)
        with self._lock:
            try:
                while self._pending and time.monotonic() < deadline and self._thread.is_alive():
                    self._lock.wait(min(0.1, max(0.0, deadline - time.monotonic())))
            except KeyboardInterrupt:  # Ctrl-C again: stop waiting, still say what is left
                pass
            self._closing = True
            self._lock.notify_all()
        self._thread.join(min(self.timeout_s, 1.0))
        left = self.undelivered
        if left:
            where = f"kept in {self.outbox}, sent on the next run" if self.outbox else "lost: no outbox"
            self._log(f"{left} alert(s) not delivered to {self.url} ({where})")
        return left

    def _store(self, event: dict) -> Path | None:
        if self.outbox is None:
            return None
        self._seq += 1
        name = f"{time.time_ns():020d}-{self._seq:06d}-{event['id']}.json"
        tmp = self.outbox / f".{name}.tmp"
        try:
            tmp.write_text(json.dumps(event))
            os.replace(tmp, self.outbox / name)
        except OSError as e:  # a full disk must not stop the monitor: deliver from memory
            self._log(f"cannot write to the outbox {self.outbox} ({e.strerror}); "
                      "this alert is in memory only")
            return None
        return self.outbox / name

    def _load_outbox(self) -> None:
        files = sorted(p for p in self.outbox.glob("*.json") if not p.name.startswith("."))
        for path in files:
            try:
                event = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            self._pending.append({"event": event, "file": path,
                                  "deadline": time.monotonic() + self.retry_s})
        if self._pending:
            self._log(f"{len(self._pending)} undelivered alert(s) from an earlier run in {self.outbox}: "
                      "sending")

    def _run(self) -> None:
        delay, failing = self.backoff_s, False
        while True:
            with self._lock:
                while not self._pending and not self._closing:
                    self._lock.wait()
                if self._closing:
                    return
                item = self._pending[0]
            error = self._post(item["event"])
            with self._lock:
                if error is None:
                    self._pending.popleft()
                    self.delivered += 1
                    if item["file"] is not None:
                        item["file"].unlink(missing_ok=True)
                    if failing:
                        self._log(f"delivering again to {self.url}")
                    delay, failing = self.backoff_s, False
                    for parked in self._parked:  # the receiver is back: retry the parked ones
                        parked["deadline"] = time.monotonic() + self.retry_s
                    self._pending.extend(self._parked)
                    self._parked.clear()
                    self._lock.notify_all()
                    continue
                if not failing:
                    self._log(f"cannot deliver to {self.url} ({error}); retrying each alert for up to "
                              f"{self.retry_s:g} s")
                    failing = True
                now = time.monotonic()
                while self._pending and self._pending[0]["deadline"] <= now:
                    gone = self._pending.popleft()
                    self._parked.append(gone)
                    self.failed += 1
                    where = "kept in the outbox" if gone["file"] is not None else "in memory only"
                    self._log(f"gave up for now on {gone['event'].get('event')} {gone['event']['id']} after "
                              f"{self.retry_s:g} s ({error}; {where})")
                self._lock.notify_all()
                if not self._closing:
                    self._lock.wait(delay)
                delay = min(self.max_backoff_s, delay * 2)

    def _post(self, event: dict) -> str | None:
        """None when delivered (2xx), else why not."""
        body = json.dumps(event).encode()
        req = urllib.request.Request(self.url, data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Idempotency-Key": event["id"]})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
                r.read()
            return None
        except Exception as e:  # URLError, HTTPError, timeouts, resets: all just mean "not delivered"
            return str(e) or type(e).__name__
