"""The streaming resampler: soxr-grade quality, time-aligned, and an output count that depends
on the input count alone, so a denoiser stream's latency is exact at every rate."""
from __future__ import annotations

import numpy as np
import pytest
import soxr

from streamae.resample import StreamResampler

PAIRS = [(44100, 16000), (16000, 44100), (48000, 16000), (16000, 48000), (22050, 16000), (8000, 16000)]


def band_limited_noise(seconds: float, rate: int, top_hz: float, seed: int = 0) -> np.ndarray:
    n = int(seconds * rate)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    spectrum[np.fft.rfftfreq(n, 1 / rate) > top_hz] = 0
    return (0.1 * np.fft.irfft(spectrum, n)).astype(np.float32)


@pytest.mark.parametrize("in_rate,out_rate", PAIRS)
def test_matches_soxr_and_is_time_aligned(in_rate, out_rate):
    """Below 6.8 kHz (the passband at 16 kHz), equal to soxr's best quality at the same instants."""
    x = band_limited_noise(2.0, in_rate, 0.85 * min(in_rate, out_rate) / 2)
    ours = StreamResampler(in_rate, out_rate).push(x[None])[0]
    reference = soxr.resample(x, in_rate, out_rate, quality="VHQ")
    edge = out_rate // 20  # skip the start-up and the end, where the two pad differently
    n = len(ours) - edge
    error = ours[edge:n] - reference[edge:n]
    assert 10 * np.log10(np.sum(reference[edge:n] ** 2) / np.sum(error ** 2)) > 70


@pytest.mark.parametrize("in_rate", [44100, 48000])
def test_rejects_what_would_alias(in_rate):
    tone = np.sin(2 * np.pi * 8200 * np.arange(in_rate) / in_rate).astype(np.float32)
    out = StreamResampler(in_rate, 16000).push(tone[None])[0][2000:]
    assert 20 * np.log10(np.sqrt(np.mean(out ** 2) * 2)) < -75


@pytest.mark.parametrize("in_rate,out_rate", PAIRS + [(44101, 16000)])
def test_chunking_changes_nothing_and_counts_are_exact(in_rate, out_rate):
    x = band_limited_noise(0.5, in_rate, 4000, seed=1)
    whole = StreamResampler(in_rate, out_rate, channels=2).push(np.stack([x, -x]))
    r = StreamResampler(in_rate, out_rate, channels=2)
    cuts = np.sort(np.random.default_rng(2).choice(len(x), 40, replace=False))
    parts = []
    for piece in np.split(np.stack([x, -x]), cuts, axis=-1):
        parts.append(r.push(piece))
        assert r.samples_out == r.available(r.samples_in)
    np.testing.assert_allclose(np.concatenate(parts, axis=-1), whole, atol=1e-6)
    assert whole.shape[-1] == r.available(len(x))
