"""Streaming sample-rate conversion with an exact, fixed delay, for the denoiser's streams.

soxr's streaming resampler releases output in bursts whose size drifts over minutes at
ratios such as 44.1 <-> 16 kHz, so a stream built on it cannot promise a fixed latency
(10 ms chunks at 44.1 kHz ran dry after about 20 s). This one is a polyphase windowed-sinc
filter driven by integer sample counts: how many samples come out depends only on how many
went in (`available`), so the delay is known exactly, for every chunking, from the first
sample on. Its filter is linear-phase and centred, so output sample k lines up in time with
input time k * in_rate / out_rate. The denoiser resamples files and streams with this;
soxr remains for loading corpora (`audio.resample`) and in the anomaly front end, where no
fixed latency is promised.
"""
from __future__ import annotations

from functools import lru_cache
from math import ceil, gcd, pi

import numpy as np

STOPBAND_DB = 80.0
PASSBAND = 0.875  # of the lower Nyquist frequency: flat to 7 kHz at 16 kHz, stopband from 8 kHz
MAX_PHASES = 4096  # rates with a finer grid (e.g. 44101 Hz) round each output's phase to 1/4096 sample
BLOCK_OUTPUTS = 4096  # outputs per gather (bounds its memory)


class StreamResampler:
    """float32 [channels, n] in, every output sample the input so far determines, out."""

    def __init__(self, in_rate: int, out_rate: int, channels: int = 1):
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        g = gcd(in_rate, out_rate)
        self.up, self.down = out_rate // g, in_rate // g  # output k sits at input time k * down / up
        self.channels = channels
        self.phases = min(self.up, MAX_PHASES)
        self.half, self.bank = _filter_bank(in_rate, out_rate, self.phases)
        # samples needed past an output's time; one more when phases are rounded (may round up)
        self.lookahead = self.half + (self.phases != self.up)
        self.reset()

    def reset(self) -> None:
        self._buffer = np.zeros((self.channels, self.half), np.float32)  # input from index -half on
        self._first = -self.half  # input index of self._buffer[:, 0]
        self.samples_in = 0
        self.samples_out = 0

    def available(self, samples_in):
        """Outputs that `samples_in` input samples determine (int or integer array)."""
        if isinstance(samples_in, (int, np.integer)):  # plain ints: this runs on every live chunk
            return max(0, -(-(int(samples_in) - self.lookahead) * self.up // self.down))
        n = np.asarray(samples_in, np.int64) - self.lookahead
        return np.maximum(0, -(-n * self.up // self.down))

    def push(self, x: np.ndarray) -> np.ndarray:
        self._buffer = np.concatenate([self._buffer, x], axis=-1)
        self.samples_in += x.shape[-1]
        start, end = self.samples_out, self.available(self.samples_in)
        out = self._outputs(start, end) if end > start else np.zeros((self.channels, 0), np.float32)
        self.samples_out = end
        keep_from = int(self._base(end)[0][0]) - self.half + 1 - self._first  # the next output's first tap
        if keep_from > 0:
            self._buffer, self._first = self._buffer[:, keep_from:], self._first + keep_from
        return out

    def _base(self, k) -> tuple[np.ndarray, np.ndarray]:
        """Output indices -> (the input sample at or before each one's time, its filter phase)."""
        k = np.atleast_1d(np.asarray(k, np.int64))
        base, rest = np.divmod(k * self.down, self.up)
        phase = rest if self.phases == self.up else np.rint(rest * (self.phases / self.up)).astype(np.int64)
        carry = phase == self.phases
        return base + carry, np.where(carry, 0, phase)

    def _outputs(self, start: int, stop: int) -> np.ndarray:
        """Outputs start..stop-1. Many at once: one BLAS product per phase over a strided view
        of the input (outputs `up` apart share a phase and sit `down` inputs apart), 30x faster
        than gathering; a few (a live chunk): one gather, instead of a call per phase."""
        if self.phases != self.up or stop - start < 2 * self.up:
            return np.concatenate([self._gathered(k, min(k + BLOCK_OUTPUTS, stop))
                                   for k in range(start, stop, BLOCK_OUTPUTS)], axis=-1)
        out = np.empty((self.channels, stop - start), np.float32)
        for first in range(start, start + self.up):
            count = (stop - 1 - first) // self.up + 1
            base, phase = divmod(first * self.down, self.up)  # exact phases here: plain int arithmetic
            row = base - self.half + 1 - self._first
            for c in range(self.channels):  # one strided view per channel and phase, one product
                windows = _windows(self._buffer[c], row, count, self.down, 2 * self.half)
                out[c, first - start::self.up] = windows @ self.bank[phase]
        return out

    def _gathered(self, start: int, stop: int) -> np.ndarray:
        base, phase = self._base(np.arange(start, stop))
        n, rows = self._buffer.shape[-1] - 2 * self.half + 1, base - self.half + 1 - self._first
        rows = np.stack([_windows(b, 0, n, 1, 2 * self.half)[rows] for b in self._buffer])
        return np.einsum("ckt,kt->ck", rows, self.bank[phase]).astype(
            np.float32
        )  # rows: [channels, outputs, taps]


def _windows(x: np.ndarray, first: int, count: int, step: int, width: int) -> np.ndarray:
    """A [count, width] view of the contiguous 1-D `x`: row i is x[first + i * step:][:width].
    Made directly: numpy's sliding_window_view has tens of microseconds of Python overhead a
    call, which a live stream paid twice per 10 ms chunk."""
    if first < 0 or count < 1 or first + (count - 1) * step + width > x.shape[0] or not x.flags.c_contiguous:
        raise ValueError(f"windows {first}+{count}x{step}+{width} do not fit a buffer of {x.shape[0]}")
    return np.ndarray((count, width), x.dtype, buffer=x, offset=first * x.itemsize,
                      strides=(step * x.itemsize, x.itemsize))


@lru_cache(maxsize=16)
def _filter_bank(in_rate: int, out_rate: int, phases: int) -> tuple[int, np.ndarray]:
    """Kaiser-windowed sinc low-pass at the middle of the transition band, sampled at each of
    `phases` fractional offsets: (half length in input samples, bank [phases, 2 * half]), each
    row summing to 1 so a constant passes unchanged. Cached: every stream and reset reuses it."""
    nyquist = min(in_rate, out_rate) / 2
    cutoff = (1 + PASSBAND) / 2 * nyquist / in_rate  # cycles per input sample
    width = (1 - PASSBAND) * nyquist / in_rate
    half = ceil((STOPBAND_DB - 7.95) / (2.285 * 2 * pi * width) / 2)
    beta = 0.1102 * (STOPBAND_DB - 8.7)
    frac = np.arange(phases)[:, None] / phases
    t = frac + half - 1 - np.arange(2 * half)[None, :]  # output time minus each tap's time
    window = np.i0(beta * np.sqrt(np.clip(1 - (t / half) ** 2, 0, None))) / np.i0(beta)
    bank = 2 * cutoff * np.sinc(2 * cutoff * t) * window
    bank = (bank / bank.sum(axis=1, keepdims=True)).astype(np.float32)
    bank.setflags(write=False)  # shared by every resampler with these rates
    return half, bank
