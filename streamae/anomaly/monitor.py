"""`streamae monitor SOURCE`: score a file, a watched folder or the microphone window by
window, and turn the scores into alerts.

Every source is a sequence of (audio blocks, rate, channels) segments fed to one
`Monitor`, which keeps a single time line (offsets continue from file to file), one
hysteresis state, the per-window score log and the history the plot draws.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..audio import AUDIO_SUFFIXES, open_input, read_blocks
from ..errors import StreamaeError
from .alerts import AlertPolicy, Hysteresis, JsonLines, Webhook
from .scorer import AnomalyModel, WindowScore

FILE_BLOCK_SECONDS = 1.0

Sink = Callable[[dict], None]


class Monitor:
    def __init__(self, model: AnomalyModel, policy: AlertPolicy, sinks: list[Sink],
                 score_log: Sink | None = None, hop_seconds: float = 0.5):
        self.model, self.sinks, self.score_log, self.hop_seconds = model, sinks, score_log, hop_seconds
        self.hysteresis = Hysteresis(model.threshold, policy)
        self.history: list[WindowScore] = []
        self.events: list[dict] = []
        self.offset_s = 0.0  # where the next segment starts on the monitor's time line
        self._last_source = ""  # where the latest window came from: an alert closed at the end names it

    def feed(self, blocks: Iterable[np.ndarray], sample_rate: int, channels: int, source: str) -> None:
        """One segment (a file, or a live stream) of float32 [channels, n] blocks."""
        segment = self.segment(sample_rate, channels, source)
        for block in blocks:
            segment.push(block)
        segment.finish()

    def segment(self, sample_rate: int, channels: int, source: str) -> "Segment":
        """A push-style segment, for sources that call us (a live input's worker thread)."""
        return Segment(self, sample_rate, channels, source)

    def feed_file(self, path: str | Path) -> None:
        with open_input(path) as f:
            self.feed(read_blocks(f, int(FILE_BLOCK_SECONDS * f.samplerate)), f.samplerate, f.channels, str(path))

    def close(self) -> None:
        """End an open alert (so every start has its end)."""
        last = self.history[-1] if self.history else None
        event = self.hysteresis.close(last)
        if event is not None:
            self._emit(event, self._last_source)

    def _handle(self, scores: list[WindowScore], source: str, base_s: float) -> None:
        for w in scores:
            w = WindowScore(w.start_s + base_s, w.end_s + base_s, w.score)
            self.history.append(w)
            self._last_source = source
            if self.score_log is not None:
                self.score_log({"source": source, "start_s": round(w.start_s, 3), "offset_s": round(w.end_s, 3),
                                "score": round(w.score, 6), "above": w.score > self.model.threshold})
            event = self.hysteresis.update(w)
            if event is not None:
                self._emit(event, source)

    def _emit(self, event: dict, source: str) -> None:
        if source:
            event["source"] = source
        self.events.append(event)
        for sink in self.sinks:
            sink(event)


class Segment:
    """One continuous stretch of audio on the monitor's time line; finish() when it ends."""

    def __init__(self, monitor: Monitor, sample_rate: int, channels: int, source: str):
        self.monitor, self.sample_rate, self.source = monitor, sample_rate, source
        self._stream = monitor.model.stream(sample_rate, channels, monitor.hop_seconds)
        self._base = monitor.offset_s
        self.samples = 0

    def push(self, block: np.ndarray) -> None:
        self.samples += block.shape[-1]
        self.monitor._handle(self._stream.push(block), self.source, self._base)

    def finish(self) -> None:
        self.monitor._handle(self._stream.finish(), self.source, self._base)
        self.monitor.offset_s = self._base + self.samples / self.sample_rate


def new_files(folder: Path, poll_s: float = 1.0, existing: bool = False, idle_exit_s: float | None = None,
              should_stop: Callable[[], bool] = lambda: False) -> Iterator[Path]:
    """Audio files that appear in `folder`, oldest first, each once it has stopped growing
    (same size and mtime on two looks), so a recorder still writing it is not read half-done."""
    if not folder.is_dir():
        raise StreamaeError("no such folder", folder)
    seen = set() if existing else set(_audio_in(folder))
    sizes: dict[Path, tuple[int, float]] = {}
    last_new = time.monotonic()
    while not should_stop():
        ready = []
        for path in _audio_in(folder):
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


def _audio_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith("."))


def watch_folder(monitor: Monitor, folder: Path, poll_s: float, existing: bool, idle_exit_s: float | None,
                 should_stop: Callable[[], bool] = lambda: False) -> None:
    for path in new_files(folder, poll_s, existing, idle_exit_s, should_stop):
        try:
            monitor.feed_file(path)
        except StreamaeError as e:  # one bad file must not stop the watch
            print(f"streamae: skipping {e}", file=sys.stderr, flush=True)


def run_monitor(args: argparse.Namespace, model: AnomalyModel) -> int:
    sinks: list[Sink] = []
    closers: list[Callable[[], None]] = []
    if not args.quiet:
        sinks.append(JsonLines(sys.stdout))
    if args.alerts:
        sinks.append(alerts := JsonLines(args.alerts))
        closers.append(alerts.close)
    if args.webhook:
        sinks.append(hook := Webhook(args.webhook))
        closers.append(hook.close)
    score_log = JsonLines(args.scores) if args.scores else None
    if score_log is not None:
        closers.append(score_log.close)
    if args.plot:
        from .plot import check_available
        check_available()
    monitor = Monitor(model, AlertPolicy(args.k, args.n, args.cooldown), sinks, score_log, args.hop)
    try:
        if args.source == "mic":
            from .mic import monitor_mic
            monitor_mic(monitor, args.device, args.duration)
        elif Path(args.source).is_dir():
            watch_folder(monitor, Path(args.source), args.poll, args.existing, args.idle_exit)
        else:
            monitor.feed_file(args.source)
    except KeyboardInterrupt:
        pass
    finally:
        monitor.close()
        for close in closers:
            close()
        if args.plot:
            from .plot import plot_scores
            plot_scores(monitor.history, monitor.events, model.threshold, args.plot)
    return 0
