"""`streamae monitor SOURCE`: score a file, a watched folder or the microphone window by
window, and turn the scores into alerts.

Every source is a sequence of (audio blocks, rate, channels) segments fed to one
`Monitor`, which keeps a single time line (offsets continue from file to file), one
hysteresis state, the per-window score log and the history the plot draws.
"""
from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..audio import find_audio, open_input, read_blocks
from ..errors import StreamaeError
from .alerts import AlertPolicy, Hysteresis, WindowScore, now_iso
from .scorer import DEFAULT_HOP_SECONDS, AnomalyModel

Sink = Callable[[dict], None]


class Monitor:
    """Window scores in, events out to every sink. Each event has a unique `id` (receivers
    drop duplicates by it; an anomaly_end's `alert` is its anomaly_start's id). Events:
    anomaly_start/anomaly_end; machine_silent/machine_running when the machine stops and
    starts again (silent windows are a state, never an anomaly); and, only with
    `level_alert_db`, level_start/level_end when the machine runs that many dB louder than
    the model's normal training audio (its median frame level) on k of n windows."""

    def __init__(self, model: AnomalyModel, policy: AlertPolicy, sinks: list[Sink],
                 score_log: Sink | None = None, hop_seconds: float = DEFAULT_HOP_SECONDS,
                 level_alert_db: float | None = None):
        self.model, self.sinks, self.score_log, self.hop_seconds = model, sinks, score_log, hop_seconds
        self.hysteresis = Hysteresis(model.threshold, policy)
        self.level = None
        if level_alert_db is not None:
            normal = model.features.normal_level_db
            if normal is None:
                raise StreamaeError("--level-alert needs a model whose card has the normal level "
                                    "(features.normal_level_db; retrain it with this version)", model.path)
            self.level = Hysteresis(normal + level_alert_db, policy, kind="level",
                                    value=lambda w: w.level_db)
        self.history: list[WindowScore] = []
        self.events: list[dict] = []
        self.offset_s = 0.0  # where the next segment starts on the monitor's time line
        self._last_source = ""  # where the latest window came from: an alert closed at the end names it
        self._state = "running"  # the machine's last reported state (silent or running)
        self._open: dict[str, str] = {}  # kind -> the id of its open alert

    def feed(self, blocks: Iterable[np.ndarray], sample_rate: int, channels: int, source: str) -> None:
        """One segment (a file, or a live stream) of float32 [channels, n] blocks."""
        segment = self.segment(sample_rate, channels, source)
        for block in blocks:
            segment.process(block)
        segment.flush()

    def segment(self, sample_rate: int, channels: int, source: str) -> "Segment":
        """A segment fed block by block, for sources that call us (a live input's worker thread)."""
        return Segment(self, sample_rate, channels, source)

    def feed_file(self, path: str | Path) -> None:
        with open_input(path) as f:
            self.feed(read_blocks(f), f.samplerate, f.channels, str(path))

    def close(self) -> None:
        """End an open alert (so every start has its end)."""
        last = self.history[-1] if self.history else None
        for rule in self._rules():
            event = rule.close(last)
            if event is not None:
                self._emit(event, self._last_source)

    def _rules(self) -> list[Hysteresis]:
        return [self.hysteresis] + ([self.level] if self.level is not None else [])

    def _handle(self, scores: list[WindowScore], source: str, base_s: float) -> None:
        for w in scores:
            w = WindowScore(w.start_s + base_s, w.end_s + base_s, w.score, w.state, w.level_db)
            self.history.append(w)
            self._last_source = source
            if self.score_log is not None:
                self.score_log(
                    {
                        "source": source,
                        "start_s": round(w.start_s, 3),
                        "offset_s": round(w.end_s, 3),
                        "state": w.state,
                        "score": round(w.score, 6) if w.scored else None,
                        "level_db": w.level_db,
                        "above": bool(w.score > self.model.threshold),
                    }
                )
            for rule in self._rules():
                event = rule.update(w)
                if event is not None:
                    self._emit(event, source)
            if w.state in ("silent", "running") and w.state != self._state:
                self._state = w.state
                self._emit({"event": f"machine_{w.state}", "time": now_iso(), "offset_s": round(w.end_s, 3),
                            "level_db": w.level_db}, source)

    def _emit(self, event: dict, source: str) -> None:
        event["id"] = uuid.uuid4().hex
        kind, _, edge = event["event"].partition("_")
        if edge == "start":
            self._open[kind] = event["id"]
        elif edge == "end" and kind in self._open:
            event["alert"] = self._open.pop(kind)
        if source:
            event["source"] = source
        self.events.append(event)
        for sink in self.sinks:
            sink(event)


class Segment:
    """One continuous stretch of audio on the monitor's time line; flush() when it ends."""

    def __init__(self, monitor: Monitor, sample_rate: int, channels: int, source: str):
        self.monitor, self.sample_rate, self.source = monitor, sample_rate, source
        self._stream = monitor.model.stream(sample_rate, channels, monitor.hop_seconds)
        self._base = monitor.offset_s
        self.samples = 0

    def process(self, block: np.ndarray) -> None:
        self.samples += block.shape[-1]
        self.monitor._handle(self._stream.process(block), self.source, self._base)

    def flush(self) -> None:
        self.monitor._handle(self._stream.flush(), self.source, self._base)
        self.monitor.offset_s = self._base + self.samples / self.sample_rate


def new_files(folder: Path, poll_s: float = 1.0, existing: bool = False, idle_exit_s: float | None = None,
              should_stop: Callable[[], bool] = lambda: False) -> Iterator[Path]:
    """Audio files that appear in `folder`, oldest first, each once it has stopped growing
    (same size and mtime on two looks), so a recorder still writing it is not read half-done."""
    if not folder.is_dir():
        raise StreamaeError("no such folder", folder)
    seen = set() if existing else set(find_audio(folder, recursive=False))
    sizes: dict[Path, tuple[int, float]] = {}
    last_new = time.monotonic()
    while not should_stop():
        ready = []
        for path in find_audio(folder, recursive=False):
            if path in seen:
                continue
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            now = (st.st_size, st.st_mtime)
            if st.st_size > 0 and sizes.get(path) == now:
                ready.append((st.st_mtime, path))
            sizes[path] = now
        for _, path in sorted(ready):
            seen.add(path)
            sizes.pop(path, None)
            last_new = time.monotonic()
            yield path
        if idle_exit_s is not None and not sizes and time.monotonic() - last_new > idle_exit_s:
            return
        time.sleep(poll_s)


def watch_folder(monitor: Monitor, folder: Path, poll_s: float, existing: bool, idle_exit_s: float | None,
                 should_stop: Callable[[], bool] = lambda: False) -> None:
    for path in new_files(folder, poll_s, existing, idle_exit_s, should_stop):
        try:
            monitor.feed_file(path)
        except StreamaeError as e:  # one bad file must not stop the watch
            print(f"streamae: skipping {e}", file=sys.stderr, flush=True)


def monitor_source(monitor: Monitor, source: str | Path, *, poll_s: float = 1.0, existing: bool = False,
                   idle_exit_s: float | None = None, input_device: str | int | None = None,
                   duration_s: float | None = None) -> None:
    """Feed `source` to `monitor` until it ends (or Ctrl-C), then close the monitor: 'mic' (the
    input device, for `duration_s` or until Ctrl-C), a folder (new files as they appear; see
    `new_files`) or one audio file."""
    try:
        if str(source) == "mic":
            from .mic import monitor_mic
            monitor_mic(monitor, input_device, duration_s)
        elif Path(source).is_dir():
            watch_folder(monitor, Path(source), poll_s, existing, idle_exit_s)
        else:
            monitor.feed_file(source)
    except KeyboardInterrupt:
        pass
    finally:
        monitor.close()
