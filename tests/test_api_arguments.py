"""Issue 23, item 16: the Python API refuses impossible arguments with a ValueError or TypeError
naming the argument and what it accepts, before allocating anything."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from streamae import Denoiser, StreamaeError
from streamae.denoiser import MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

RANGE = rf"sample_rate must be an int in \[{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}\] Hz"


@pytest.fixture(scope="module")
def d(tiny_model):
    return Denoiser(tiny_model)


@pytest.mark.parametrize("rate,error", [
    (10**9, ValueError), (2**31, ValueError), (0, ValueError), (-16000, ValueError), (999, ValueError),
    (float("nan"), ValueError), (float("inf"), ValueError), (44100.5, ValueError),
    ("16000", TypeError), (True, TypeError), ([16000], TypeError),
])
def test_impossible_sample_rates_are_refused_before_allocating(d, rate, error):
    x = np.zeros(1600, np.float32)
    tracemalloc.start()
    try:
        with pytest.raises(error, match=RANGE) as caught:
            d.process(x, sample_rate=rate)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # refused, not attempted: 10**9 used to take 4.35 GB
    assert isinstance(caught.value, StreamaeError)  # the CLI prints it as one line
    with pytest.raises(error, match=RANGE):
        d.stream(sample_rate=rate)


def test_sample_rate_none_is_refused_by_process(d):
    with pytest.raises(TypeError, match="sample_rate is required"):
        d.process(np.zeros(160, np.float32), sample_rate=None)
    assert d.stream(sample_rate=None).sample_rate == d.sample_rate  # stream(): documented default


def test_accepted_edges(d):
    for rate in (MIN_SAMPLE_RATE, 8000, 48000.0, np.int64(44100), MAX_SAMPLE_RATE):
        y = d.process(np.zeros(int(rate) // 50, np.float32), sample_rate=rate)
        assert y.shape == (int(rate) // 50,)


@pytest.mark.parametrize("channels,error", [
    (-1, ValueError), (0, ValueError), (MAX_CHANNELS + 1, ValueError), (1.0, TypeError), ("2", TypeError),
    (None, TypeError),
])
def test_impossible_channel_counts_are_refused(d, channels, error):
    with pytest.raises(error, match=rf"channels must be an int in \[1, {MAX_CHANNELS}\]"):
        d.stream(16000, channels=channels)


def test_other_arguments(d, tiny_model):
    with pytest.raises(TypeError, match="audio must be float"):
        d.process(np.zeros(160, np.int16), 16000)
    with pytest.raises(ValueError, match="shape"):
        d.process(np.zeros(0, np.float32), 16000)
    with pytest.raises(ValueError, match="threads must be an int >= 0"):
        Denoiser(tiny_model, threads=-1)
    with pytest.raises(TypeError, match="threads must be an int >= 0"):
        Denoiser(tiny_model, threads="2")
    with pytest.raises(ValueError, match="atten_lim_db must be a finite number"):
        Denoiser(tiny_model, atten_lim_db=float("nan"))
