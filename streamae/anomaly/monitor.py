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
from typing import Callable, Iterable

import numpy as np

from ..audio import FILE_BLOCK_SECONDS, find_audio, naming, open_input, read_blocks
from ..errors import StreamaeError
from .alerts import AlertPolicy, Hysteresis, WindowScore, now_iso
from .follow import WavFollower, is_wav
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
        with open_input(path) as f, naming(path):
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


DEFAULT_SETTLE_S = 5.0  # a file that has not grown for this long is complete


class _Followed:
    """A WAV being followed as it grows: one monitor segment, fed as data arrives."""

    def __init__(self, monitor: Monitor, path: Path):
        self.path, self.reader, self.segment = path, WavFollower(path), None
        self.monitor = monitor
        self.grew_at = time.monotonic()

    def poll(self) -> bool:
        """Feed what arrived; True if anything did."""
        block = self.reader.read_new()
        if block.shape[1] == 0:
            return False
        if self.segment is None:
            self.segment = self.monitor.segment(self.reader.samplerate, self.reader.channels, str(self.path))
        step = max(1, int(FILE_BLOCK_SECONDS * self.reader.samplerate))
        for i in range(0, block.shape[1], step):
            self.segment.process(block[:, i:i + step])
        self.grew_at = time.monotonic()
        return True

    def finish(self) -> None:
        if self.segment is not None:
            self.segment.flush()


def watch_folder(monitor: Monitor, folder: Path, poll_s: float = 1.0, existing: bool = False,
                 idle_exit_s: float | None = None, should_stop: Callable[[], bool] = lambda: False,
                 settle_s: float = DEFAULT_SETTLE_S) -> None:
    """Score the audio files that appear in `folder` (and, with `existing`, those already there),
    oldest first, every window of every file exactly once, while they are still being written.

    A WAV is followed as a stream: each look reads the frames written since the last one (a
    header whose sizes are not final yet is read as far as its data goes), and the file is done
    when it has not grown for `settle_s` or a newer file has appeared and it did not grow since
    the last look. Other formats cannot be read half-written: they are read whole once their size
    and mtime have not changed for `settle_s`. Files are taken one at a time, so the monitor's
    time line runs on from file to file. Hidden files (a recorder's .x.wav.partial) are ignored.
    """
    if not folder.is_dir():
        raise StreamaeError("no such folder", folder)
    done = set() if existing else set(find_audio(folder, recursive=False))
    seen_at: dict[Path, tuple[tuple[int, float], float]] = {}  # path -> (size, mtime), since when
    current: _Followed | None = None
    last_activity = time.monotonic()
    while not should_stop():
        now = time.monotonic()
        pending = []
        for path in find_audio(folder, recursive=False):
            if path in done or (current is not None and path == current.path):
                continue
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            stamp = (st.st_size, st.st_mtime)
            if seen_at.get(path, (None, 0.0))[0] != stamp:
                seen_at[path] = (stamp, now)
                last_activity = now
            pending.append((st.st_mtime, path))
        pending.sort()
        if current is not None:
            try:
                grew = current.poll()
            except (StreamaeError, OSError) as e:
                print(f"streamae: skipping {e}", file=sys.stderr, flush=True)
                grew, current.segment = False, None
            if grew:
                last_activity = now
            elif pending or now - current.grew_at >= settle_s:
                current.finish()
                done.add(current.path)
                current = None
        while current is None and pending:
            path = pending[0][1]
            try:
                if path.stat().st_size == 0:
                    break  # created, nothing written yet
            except FileNotFoundError:
                pending.pop(0)
                continue
            if is_wav(path):
                pending.pop(0)
                current = _Followed(monitor, path)
                seen_at.pop(path, None)
                try:
                    current.poll()
                except (StreamaeError, OSError) as e:
                    print(f"streamae: skipping {e}", file=sys.stderr, flush=True)
                    done.add(path)
                    current = None
                continue
            stamp, since = seen_at.get(path, (None, now))
            if now - since < settle_s:
                break  # the oldest file is not complete yet: wait for it, keep the order
            pending.pop(0)
            done.add(path)
            seen_at.pop(path, None)
            try:
                monitor.feed_file(path)
            except StreamaeError as e:  # one bad file must not stop the watch
                print(f"streamae: skipping {e}", file=sys.stderr, flush=True)
        if (idle_exit_s is not None and current is None and not pending
                and time.monotonic() - last_activity > idle_exit_s):
            break
        time.sleep(poll_s)
    if current is not None:
        current.finish()


def monitor_source(monitor: Monitor, source: str | Path, *, poll_s: float = 1.0, existing: bool = False,
                   idle_exit_s: float | None = None, input_device: str | int | None = None,
                   duration_s: float | None = None, settle_s: float = DEFAULT_SETTLE_S) -> None:
    """Feed `source` to `monitor` until it ends (or Ctrl-C), then close the monitor: 'mic' (the
    input device, for `duration_s` or until Ctrl-C), a folder (new files as they appear, followed
    while they are written; see `watch_folder`) or one audio file."""
    try:
        if str(source) == "mic":
            from .mic import monitor_mic
            monitor_mic(monitor, input_device, duration_s)
        elif Path(source).is_dir():
            watch_folder(monitor, Path(source), poll_s, existing, idle_exit_s, settle_s=settle_s)
        else:
            monitor.feed_file(source)
    except KeyboardInterrupt:
        pass
    finally:
        monitor.close()
