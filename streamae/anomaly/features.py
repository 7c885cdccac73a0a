"""The one log-mel front end of the anomaly monitor, shared by training and runtime.

Training loads files through `file_frames` and cuts windows with `window_at` +
`normalise`; the runtime scorer streams through `FeatureStream` and `WindowCutter`, which
`file_frames` is built on, so the features the model learned and the features it is
scored on are computed by the same lines.

Level is removed per window (`normalise` subtracts the window's mean log energy): a
machine recorded closer, louder or with more gain gives the same features, so the
monitor cannot lean on loudness.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soxr

from ..audio import RESAMPLE_QUALITY, SAMPLE_RATE, naming, open_input, read_blocks
from ..errors import StreamaeError

FLOOR_POWER = 1e-10  # -100 dB: digital silence stays finite


@dataclass(frozen=True)
class FeatureConfig:
    sample_rate: int = SAMPLE_RATE
    n_fft: int = 1024
    hop: int = 256
    bands: int = 64
    fmin: float = 50.0
    fmax: float = 7000.0  # not 8000: any resampler to 16 kHz rolls off the top band (-7 dB)
    window_frames: int = 122  # (2 s - n_fft) / hop + 1 at 16 kHz: what one score looks at

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureConfig":
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


_FILTERS: dict[FeatureConfig, tuple[np.ndarray, np.ndarray]] = {}


def logmel(audio: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Mono audio at cfg.sample_rate -> log-mel power in dB, float32 [bands, frames].

    Frames start at multiples of hop and are never padded, so a signal cut into pieces
    at frame boundaries gives the same frames as the whole (float64 inside for that).
    """
    if cfg not in _FILTERS:
        _FILTERS[cfg] = (mel_filterbank(cfg), np.hanning(cfg.n_fft + 1)[:-1])
    filters, window = _FILTERS[cfg]
    x = np.asarray(audio, np.float64)
    n = 0 if len(x) < cfg.n_fft else 1 + (len(x) - cfg.n_fft) // cfg.hop
    if n == 0:
        return np.zeros((cfg.bands, 0), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, cfg.n_fft)[:: cfg.hop][:n]
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2
    mel = np.einsum("fk,bk->bf", power, filters, optimize=False)
    return (10.0 * np.log10(mel + FLOOR_POWER)).astype(np.float32)


def normalise(windows: np.ndarray) -> np.ndarray:
    """[..., bands, frames] -> the same minus each window's mean: level-invariant features."""
    return (windows - windows.mean(axis=(-2, -1), keepdims=True)).astype(np.float32)


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
    return normalise(frames[:, start:start + cfg.window_frames])


def window_starts(n_frames: int, cfg: FeatureConfig, hop_frames: int) -> np.ndarray:
    """Start frames of every whole window, `hop_frames` apart."""
    if n_frames < cfg.window_frames:
        return np.zeros(0, np.int64)
    return np.arange(0, n_frames - cfg.window_frames + 1, hop_frames)


class WindowCutter:
    """New frames in, every finished normalised window out (with its start frame)."""

    def __init__(self, cfg: FeatureConfig, hop_frames: int):
        self.cfg, self.hop_frames = cfg, hop_frames
        self._frames = np.zeros((cfg.bands, 0), np.float32)
        self._first = 0  # stream frame index of self._frames[:, 0]
        self._next = 0  # stream frame index where the next window starts

    def process(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """-> (windows [N, bands, window_frames], start frames [N])."""
        self._frames = np.concatenate([self._frames, frames], axis=1)
        end = self._first + self._frames.shape[1]
        starts = np.arange(self._next, end - self.cfg.window_frames + 1, self.hop_frames)
        wins = [window_at(self._frames, s - self._first, self.cfg) for s in starts]
        if len(starts):
            self._next = int(starts[-1]) + self.hop_frames
        keep_from = min(self._next, end) - self._first
        self._frames, self._first = self._frames[:, keep_from:], self._first + keep_from
        shape = (0, self.cfg.bands, self.cfg.window_frames)
        return (np.stack(wins) if wins else np.zeros(shape, np.float32)), starts.astype(np.int64)
