"""The one log-mel front end of the anomaly monitor, shared by training and runtime.

Training loads files through `file_frames` and cuts windows with `window_at` +
`normalise`; the runtime scorer streams through `FeatureStream` and `WindowCutter`, which
`file_frames` is built on, so the features the model learned and the features it is
scored on are computed by the same lines.

Level is removed frame by frame (`normalise`, norm="smooth": each frame's mean log energy
over the bands, averaged over 0.5 s, is subtracted): a machine recorded closer, louder, with
more gain, or ramping up or down inside a window gives the same features, so the monitor
cannot lean on loudness, while clicks and knocks (shorter than 0.5 s) keep their envelope.
Models from before 2026-12 subtract the window's mean ("window"; a card without `norm`);
"frame" subtracts each frame's own mean (on dcase2020-id00 it cost window AUC 1.000 -> 0.966,
where "smooth" kept 1.000). An abrupt gain step is a broadband click in any spectrum, so
windows with one are not scored (see `window_state`).

Silence is a state, not a sound: every frame has a level (`frame_levels`, dB relative to
full-scale white noise), and a frame below the model's `silence_db` is the machine off (or
a microphone gone quiet). A window is scored only when all its frames are above it;
`window_state` says what the others are, and they are never scored as anomalies.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soxr

from ..audio import RESAMPLE_QUALITY, SAMPLE_RATE, naming, open_input, read_blocks
from ..errors import StreamaeError

FLOOR_POWER = 1e-10  # -100 dB: digital silence stays finite
DEFAULT_SILENCE_DB = -60.0  # models without a measured level: below this a frame is silence
SILENCE_BELOW_MEDIAN_DB = 20.0  # trained models: silence is this far below normal's median frame level
DEFAULT_STEP_DB = 6.0  # a level change this large inside a window is a gain step or a ramp (at least)
STEP_FRAMES = 8  # a step: the median level of 8 frames (0.13 s) against the next 8's
RUNNING, TRANSITION, SILENT = "running", "transition", "silent"  # what a window is (see window_state)


@dataclass(frozen=True)
class FeatureConfig:
    sample_rate: int = SAMPLE_RATE
    n_fft: int = 1024
    hop: int = 256
    bands: int = 64
    fmin: float = 50.0
    fmax: float = 7000.0  # not 8000: any resampler to 16 kHz rolls off the top band (-7 dB)
    window_frames: int = 122  # (2 s - n_fft) / hop + 1 at 16 kHz: what one score looks at
    norm: str = "smooth"  # level removed per frame, smoothed over 0.5 s (see normalise)
    silence_db: float = DEFAULT_SILENCE_DB  # frames below this level are silence (see frame_levels)
    normal_level_db: float | None = None  # median frame level of the normal training audio
    step_db: float = DEFAULT_STEP_DB  # a larger abrupt level step inside a window (gain change): not scored
    ramp_db: float = DEFAULT_STEP_DB  # a larger level trend across a window (start/stop ramp): not scored

    def __post_init__(self):
        if self.norm not in ("frame", "window", "smooth"):
            raise StreamaeError(f"unknown feature normalisation {self.norm!r} (window, frame or smooth)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureConfig":
        d = {"norm": "window", **d}  # a card without it is from before 2026-12: window normalisation
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    @property
    def window_seconds(self) -> float:
        return ((self.window_frames - 1) * self.hop + self.n_fft) / self.sample_rate

    def frames_for(self, seconds: float) -> int:
        """Whole frames (at least 1) closest to `seconds` of hop."""
        return max(1, round(seconds * self.sample_rate / self.hop))


def mel_filterbank(cfg: FeatureConfig) -> np.ndarray:
    """Triangular HTK-mel filters [bands, n_fft // 2 + 1], float64."""
    def mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(cfg.fmin), mel(min(cfg.fmax, cfg.sample_rate / 2)), cfg.bands + 2))
    freqs = np.fft.rfftfreq(cfg.n_fft, 1.0 / cfg.sample_rate)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / (mid - lo)
    down = (hi - freqs[None]) / (hi - mid)
    return np.clip(np.minimum(up, down), 0.0, None)


_FILTERS: dict[FeatureConfig, tuple[np.ndarray, np.ndarray, float]] = {}


def _filters(cfg: FeatureConfig) -> tuple[np.ndarray, np.ndarray, float]:
    """(mel filters, analysis window, the log-mel dB of full-scale white noise)."""
    if cfg not in _FILTERS:
        filters, window = mel_filterbank(cfg), np.hanning(cfg.n_fft + 1)[:-1]
        # white noise of RMS 1 has expected power sum(window**2) in every FFT bin
        full_scale = 10.0 * np.log10(np.sum(window ** 2) * filters.sum(axis=1).mean())
        _FILTERS[cfg] = (filters, window, float(full_scale))
    return _FILTERS[cfg]


def logmel(audio: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Mono audio at cfg.sample_rate -> log-mel power in dB, float32 [bands, frames].

    Frames start at multiples of hop and are never padded, so a signal cut into pieces
    at frame boundaries gives the same frames as the whole (float64 inside for that).
    """
    filters, window, _ = _filters(cfg)
    x = np.asarray(audio, np.float64)
    n = 0 if len(x) < cfg.n_fft else 1 + (len(x) - cfg.n_fft) // cfg.hop
    if n == 0:
        return np.zeros((cfg.bands, 0), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, cfg.n_fft)[:: cfg.hop][:n]
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2
    mel = np.einsum("fk,bk->bf", power, filters, optimize=False)
    return (10.0 * np.log10(mel + FLOOR_POWER)).astype(np.float32)


SMOOTH_FRAMES = 31  # norm="smooth": the level is followed over 0.5 s


def normalise(windows: np.ndarray, norm: str = "window") -> np.ndarray:
    """[..., bands, frames] -> level-invariant features: minus the window's mean ("window"), minus
    each frame's mean over the bands ("frame"), or minus that mean averaged over SMOOTH_FRAMES
    frames around each frame ("smooth": slow level changes, ramps and gain steps are removed,
    the envelope of clicks and knocks is kept). Computed inside the window alone, edges held."""
    w = np.asarray(windows, np.float32)
    if norm == "window":
        return (w - w.mean(axis=(-2, -1), keepdims=True)).astype(np.float32)
    level = w.mean(axis=-2, keepdims=True)
    if norm == "smooth":
        half = SMOOTH_FRAMES // 2
        pad = [(0, 0)] * (level.ndim - 1) + [(half, half)]
        c = np.cumsum(np.pad(level.astype(np.float64), pad, mode="edge"), axis=-1)
        c = np.concatenate([np.zeros_like(c[..., :1]), c], axis=-1)
        level = ((c[..., SMOOTH_FRAMES:] - c[..., :-SMOOTH_FRAMES]) / SMOOTH_FRAMES).astype(np.float32)
    return (w - level).astype(np.float32)


def frame_levels(frames: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Log-mel frames [..., bands, frames] -> each frame's level in dB [..., frames]: its mean mel
    power relative to full-scale white noise's (0 dB; a -30 dBFS RMS broadband sound is about -30)."""
    power = 10.0 ** (np.asarray(frames, np.float64) / 10.0)
    return (10.0 * np.log10(power.mean(axis=-2)) - _filters(cfg)[2]).astype(np.float32)


def level_steps(levels: np.ndarray) -> np.ndarray:
    """Frame levels [..., frames] -> |median of the STEP_FRAMES frames after each point - median of
    the STEP_FRAMES before| [..., frames - 2 * STEP_FRAMES + 1]: sustained level changes (a gain
    step, a start), not brief ones (a click, a knock)."""
    runs = np.median(np.lib.stride_tricks.sliding_window_view(np.asarray(levels, np.float64), STEP_FRAMES,
                                                             axis=-1), axis=-1)
    return np.abs(runs[..., STEP_FRAMES:] - runs[..., :-STEP_FRAMES])


def level_change(levels: np.ndarray) -> tuple[float, float]:
    """How a window's level changes, in dB: (its biggest abrupt step, `level_steps`: a gain
    change; its trend, the median level of its last quarter against its first: a start or stop
    ramp). Clicks, knocks and rattles move neither."""
    levels = np.asarray(levels, np.float64)
    q = max(1, len(levels) // 4)
    trend = abs(float(np.median(levels[-q:]) - np.median(levels[:q])))
    steps = level_steps(levels) if len(levels) > 2 * STEP_FRAMES else np.zeros(1)
    return float(steps.max()), trend


def window_state(levels: np.ndarray, cfg: FeatureConfig) -> str:
    """A window's frame levels [frames] -> RUNNING (scored): every frame above `silence_db` and
    no gain step over `step_db` nor ramp over `ramp_db` (see `level_change`); SILENT: half or more of
    the frames below silence (the machine is off); TRANSITION: anything between: starting,
    stopping, a dropout, a gain step, a start or stop ramp. Neither of the last two is scored:
    their quiet frames are the room, not the machine, an abrupt gain change is a broadband click
    in any spectrum, and a fast ramp leaves a slope that even the smoothed level cannot follow."""
    quiet = int(np.count_nonzero(np.asarray(levels) <= cfg.silence_db))
    if 2 * quiet >= len(levels):
        return SILENT
    step, trend = level_change(levels)
    if quiet or step > cfg.step_db or trend > cfg.ramp_db:
        return TRANSITION
    return RUNNING


def running_starts(frames: np.ndarray, cfg: FeatureConfig, hop_frames: int = 1) -> np.ndarray:
    """Start frames (hop_frames apart) of the windows of `frames` whose every frame is above silence."""
    starts = window_starts(frames.shape[1], cfg, hop_frames)
    quiet = np.concatenate([[0], np.cumsum(frame_levels(frames, cfg) <= cfg.silence_db)])
    return starts[quiet[starts + cfg.window_frames] - quiet[starts] == 0]


class FeatureStream:
    """Audio blocks at any rate and channel count in, new log-mel frames out.

    Channels are averaged, the rate is converted with a streaming soxr resampler, and
    samples are kept back until they complete a frame.
    """

    def __init__(self, cfg: FeatureConfig, sample_rate: int, channels: int = 1):
        if sample_rate < 2 * cfg.fmax:  # the top bands would be empty, and every window "anomalous"
            raise StreamaeError(
                f"recorded at {sample_rate} Hz, but this model listens up to {cfg.fmax:.0f} Hz "
                f"and needs at least {2 * cfg.fmax:.0f} Hz"
            )
        self.cfg = cfg
        self._resampler = None
        if sample_rate != cfg.sample_rate:
            self._resampler = soxr.ResampleStream(sample_rate, cfg.sample_rate, 1, dtype="float32",
                                                  quality=RESAMPLE_QUALITY)
        self._pending = np.zeros(0, np.float32)
        self.channels = channels

    def process(self, block: np.ndarray) -> np.ndarray:
        """block: float32 [channels, n] or [n] -> [bands, new frames]."""
        return self._frames(block, last=False)

    def flush(self) -> np.ndarray:
        """The frames the resampler still held at the end of the audio."""
        return self._frames(np.zeros((self.channels, 0), np.float32), last=True)

    def _frames(self, block: np.ndarray, last: bool) -> np.ndarray:
        # NaN/inf -> 0: a bad sample would otherwise stay in the resampler and spoil every later score
        x = np.nan_to_num(np.asarray(block, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        mono = x.mean(axis=0) if x.ndim == 2 else x
        if self._resampler is not None:
            mono = self._resampler.resample_chunk(np.ascontiguousarray(mono), last=last)
        buf = np.concatenate([self._pending, mono])
        out = logmel(buf, self.cfg)
        self._pending = buf[out.shape[1] * self.cfg.hop:]
        return out


def file_frames(path: str | Path, cfg: FeatureConfig) -> np.ndarray:
    """A whole file's log-mel frames [bands, frames], through the runtime's FeatureStream."""
    with open_input(path) as f, naming(path):
        stream = FeatureStream(cfg, f.samplerate, f.channels)
        parts = [stream.process(b) for b in read_blocks(f)]
        parts.append(stream.flush())
    return np.concatenate(parts, axis=1)


def window_at(frames: np.ndarray, start: int, cfg: FeatureConfig) -> np.ndarray:
    """The normalised window of `frames` starting at frame `start`: [bands, window_frames]."""
    return normalise(frames[:, start:start + cfg.window_frames], cfg.norm)


def window_starts(n_frames: int, cfg: FeatureConfig, hop_frames: int) -> np.ndarray:
    """Start frames of every whole window, `hop_frames` apart."""
    if n_frames < cfg.window_frames:
        return np.zeros(0, np.int64)
    return np.arange(0, n_frames - cfg.window_frames + 1, hop_frames)


class WindowCutter:
    """New frames in, every finished normalised window out (with its start frame and frame levels)."""

    def __init__(self, cfg: FeatureConfig, hop_frames: int):
        self.cfg, self.hop_frames = cfg, hop_frames
        self._frames = np.zeros((cfg.bands, 0), np.float32)
        self._first = 0  # stream frame index of self._frames[:, 0]
        self._next = 0  # stream frame index where the next window starts

    def process(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """-> (windows [N, bands, window_frames], start frames [N], frame levels [N, window_frames])."""
        self._frames = np.concatenate([self._frames, frames], axis=1)
        end = self._first + self._frames.shape[1]
        starts = np.arange(self._next, end - self.cfg.window_frames + 1, self.hop_frames)
        wins = [window_at(self._frames, s - self._first, self.cfg) for s in starts]
        w = self.cfg.window_frames
        levels = frame_levels(self._frames, self.cfg) if len(starts) else np.zeros(0, np.float32)
        levels = np.stack([levels[s - self._first:s - self._first + w] for s in starts]) if len(starts) \
            else np.zeros((0, w), np.float32)
        if len(starts):
            self._next = int(starts[-1]) + self.hop_frames
        keep_from = min(self._next, end) - self._first
        self._frames, self._first = self._frames[:, keep_from:], self._first + keep_from
        shape = (0, self.cfg.bands, self.cfg.window_frames)
        return (np.stack(wins) if wins else np.zeros(shape, np.float32)), starts.astype(np.int64), levels
