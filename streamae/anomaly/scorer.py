"""Run an anomaly model (ONNX) on audio: per-window scores, streaming, and per-file scores.

numpy + onnxruntime only. Every path (file, folder, live) goes through `ScoreStream`, so
a window gets the same score however the audio arrived.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .. import runtime
from ..audio import naming, open_input, read_blocks
from ..errors import StreamaeError
from .alerts import AlertPolicy, WindowScore, alert_level
from .features import RUNNING, FeatureConfig, FeatureStream, WindowCutter, window_state

DEFAULT_HOP_SECONDS = 0.5  # a new score every half second
BATCH = 256  # windows per onnxruntime call

__all__ = ["DEFAULT_HOP_SECONDS", "AnomalyModel", "FileScore", "ScoreStream", "WindowScore"]


@dataclass(frozen=True)
class FileScore:
    """A recording's verdict. `score` is the alert level (see `alerts.alert_level`), so
    `anomalous` (score > threshold) is exactly whether the monitor would raise an alert on it,
    for recordings of at least k windows (3 s at the default 3 of 4); shorter ones are judged
    on all their windows, where the monitor would stay silent. Only windows where the machine
    runs are scored: silent and transition windows are counted, never judged; a recording with
    no running window at all is `silent` (score 0, not anomalous)."""
    file: str
    score: float
    threshold: float
    anomalous: bool
    mean_window_score: float  # DCASE's file score, for comparison
    max_window_score: float
    windows: int
    windows_above: int
    seconds: float  # the recording's length (the last window may end before it)
    silent_windows: int = 0  # the machine off: not scored
    transition_windows: int = 0  # partly silent (starting, stopping): not scored

    @property
    def silent(self) -> bool:
        return self.windows == 0

    @classmethod
    def of(cls, path: str | Path, windows: list[WindowScore], threshold: float, policy: AlertPolicy,
           seconds: float | None = None) -> "FileScore":
        scores = np.array([w.score for w in windows if w.state == RUNNING])
        level = alert_level(scores, policy) if len(scores) else 0.0
        states = [w.state for w in windows]
        return cls(
            str(path),
            level,
            threshold,
            level > threshold,
            float(scores.mean()) if len(scores) else 0.0,
            float(scores.max()) if len(scores) else 0.0,
            len(scores),
            int((scores > threshold).sum()),
            windows[-1].end_s if seconds is None else seconds,
            states.count("silent"),
            states.count("transition"),
        )

    def to_dict(self) -> dict:
        return {"file": self.file, "score": round(self.score, 6), "threshold": round(self.threshold, 6),
                "anomalous": self.anomalous, "silent": self.silent,
                "mean_window_score": round(self.mean_window_score, 6),
                "max_window_score": round(self.max_window_score, 6), "windows": self.windows,
                "windows_above": self.windows_above, "silent_windows": self.silent_windows,
                "transition_windows": self.transition_windows, "seconds": round(self.seconds, 3)}


class AnomalyModel:
    """A trained anomaly autoencoder: normalised log-mel windows in, reconstruction error out.

    >>> m = AnomalyModel("models/anomaly-mimii-id00.onnx")
    >>> m.score_file("examples/machine/anomalous.flac").anomalous
    """

    def __init__(self, path: str | Path, threads: int = 1):
        self.path = Path(path)
        self.session = runtime.session(self.path, threads=threads)
        self.info = runtime.metadata(self.session)
        if self.info.get("kind") != "anomaly":
            raise StreamaeError("not a streamae anomaly model (metadata streamae.kind is "
                                f"{self.info.get('kind')!r}, expected 'anomaly')", self.path)
        self.features = FeatureConfig.from_dict(self.info["features"])
        threshold = self.info.get("threshold")
        self.threshold = float(threshold) if threshold is not None else float("inf")
        self._input = self.session.get_inputs()[0].name

    def score_windows(self, windows: np.ndarray) -> np.ndarray:
        """Normalised windows [N, bands, window_frames] -> scores [N] (higher = more anomalous)."""
        out = [
            self.session.run(
                ["score"], {self._input: np.ascontiguousarray(windows[i : i + BATCH], np.float32)}
            )[0]
            for i in range(0, len(windows), BATCH)
        ]
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)

    def stream(
        self, sample_rate: int, channels: int = 1, hop_seconds: float = DEFAULT_HOP_SECONDS
    ) -> "ScoreStream":
        return ScoreStream(self, sample_rate, channels, hop_seconds)

    def file_window_scores(
        self, path: str | Path, hop_seconds: float = DEFAULT_HOP_SECONDS
    ) -> list[WindowScore]:
        with open_input(path) as f, naming(path):
            return self._scores_of(f, hop_seconds)

    def score_file(self, path: str | Path, hop_seconds: float = DEFAULT_HOP_SECONDS,
                   policy: AlertPolicy = AlertPolicy()) -> FileScore:
        with open_input(path) as f, naming(path):
            windows, seconds = self._scores_of(f, hop_seconds), f.frames / f.samplerate
        if not windows:
            raise StreamaeError(f"shorter than the model's {self.features.window_seconds:.2f} s window", path)
        return FileScore.of(path, windows, self.threshold, policy, seconds)

    def _scores_of(self, f: sf.SoundFile, hop_seconds: float) -> list[WindowScore]:
        stream = self.stream(f.samplerate, f.channels, hop_seconds)
        scores = [s for b in read_blocks(f) for s in stream.process(b)]
        return scores + stream.flush()


class ScoreStream:
    """Audio blocks in, a WindowScore for every finished window out (hop_seconds apart)."""

    def __init__(self, model: AnomalyModel, sample_rate: int, channels: int = 1,
                 hop_seconds: float = DEFAULT_HOP_SECONDS):
        if sample_rate <= 0:
            raise StreamaeError(f"sample rate must be positive, got {sample_rate}")
        if hop_seconds <= 0:
            raise StreamaeError(f"window hop must be positive, got {hop_seconds} s")
        cfg = model.features
        self.model, self.cfg = model, cfg
        self._features = FeatureStream(cfg, sample_rate, channels)
        self._cutter = WindowCutter(cfg, cfg.frames_for(hop_seconds))
        self.channels = channels

    def process(self, block: np.ndarray) -> list[WindowScore]:
        """block: float32 [channels, n] or [n] -> the windows it finished."""
        return self._scored(self._features.process(block))

    def flush(self) -> list[WindowScore]:
        """The windows the end of the audio finishes."""
        return self._scored(self._features.flush())

    def _scored(self, frames: np.ndarray) -> list[WindowScore]:
        """Score the running windows; silent and transition ones get a state and no score (NaN)."""
        windows, starts, levels = self._cutter.process(frames)
        cfg = self.cfg
        states = [window_state(lv, cfg) for lv in levels]
        running = np.array([st == RUNNING for st in states], bool)
        scores = np.full(len(starts), np.nan)
        if running.any():
            scores[running] = self.model.score_windows(windows[running])
        window_db = 10.0 * np.log10(np.mean(10.0 ** (levels.astype(np.float64) / 10.0), axis=1)) \
            if len(levels) else np.zeros(0)
        return [WindowScore(s * cfg.hop / cfg.sample_rate, ((s + cfg.window_frames - 1) * cfg.hop + cfg.n_fft)
                            / cfg.sample_rate, float(v), st, round(float(db), 2))
                for s, v, st, db in zip(starts, scores, states, window_db)]
