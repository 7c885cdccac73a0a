"""The real microphone path, end to end, through a private PulseAudio server (no hardware):

    paplay clip -> "mic" null sink -> default source (mic.monitor) -> PortAudio/ALSA pulse plugin
    -> `streamae live --record` -> file, compared with the offline output of the same model.

Skipped only where PulseAudio or PortAudio is missing; `.ci/run` installs both and sets
STREAMAE_REQUIRE_PULSE=1, which turns the skip into a failure.
"""
from __future__ import annotations

import re
import subprocess
import sys
import threading

import numpy as np
import soundfile as sf

from streamae import Denoiser

from conftest import REPO, noise, speechlike
from support.pulse_loopback import PulseLoopback, require_pulse

RATE, CHUNK, BUFFER_CHUNKS = 48000, 480, 2
HOP_PERIOD = 240  # the model's hop at 48 kHz: its output depends on where a signal starts modulo this


def test_microphone_through_pulseaudio_matches_offline(tiny_model, tmp_path):
    """A real-time loop on a shared 2-core machine can glitch (a late block is passed through
    uncleaned, by design): up to 3 takes, each held to the same sample-exact comparison."""
    require_pulse()
    for attempt in range(3):
        try:
            return _one_take(tiny_model, tmp_path / f"take{attempt}")
        except AssertionError:
            if attempt == 2:
                raise


def _one_take(tiny_model, tmp_path) -> None:
    tmp_path.mkdir()
    x = np.concatenate(
        [np.zeros(RATE // 20, np.float32), speechlike(1.5, RATE, seed=8) + noise(1.5, RATE, seed=9)]
    )
    clip, rec = tmp_path / "clip.wav", tmp_path / "rec.wav"
    sf.write(clip, x, RATE, subtype="FLOAT")
    with PulseLoopback(rate=RATE) as pulse:
        live = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamae",
                "live",
                "--record",
                str(rec),
                "--duration",
                "3",
                "--rate",
                str(RATE),
                "--chunk-ms",
                "10",
                "--buffer-chunks",
                str(BUFFER_CHUNKS),
                "--model",
                str(tiny_model),
            ],
            cwd=REPO,
            env=pulse.env,
            stderr=subprocess.PIPE,
            text=True,
        )
        log, running = [], threading.Event()

        def follow() -> None:
            for line in live.stderr:
                log.append(line)
                if "live: running" in line:
                    running.set()
            running.set()

        threading.Thread(target=follow, daemon=True).start()
        assert running.wait(60), "streamae live did not start"
        assert live.poll() is None, "".join(log)
        subprocess.run(["paplay", "--device=mic", str(clip)], env=pulse.env, check=True, timeout=30)
        assert live.wait(60) == 0, "".join(log)
    text = "".join(log)
    assert "latency" in text, text
    counts = re.search(r"skipped (\d+), passthrough (\d+)", text)
    # A start-up hiccup on a loaded machine is tolerated (the clip plays after start-up); the
    # sample-exact comparison below fails if any block of the clip itself was not cleaned.
    assert counts and int(counts[1]) + int(counts[2]) <= 2, text

    y, rate = sf.read(rec, dtype="float32")
    assert rate == RATE and len(y) == 3 * RATE
    d = Denoiser(tiny_model)
    lead, ncc = _find_onset(d, x, y)
    assert ncc > 0.99, (lead, ncc)
    s = d.stream(RATE)
    expected = np.concatenate([np.zeros(BUFFER_CHUNKS * CHUNK + lead, np.float32), x])
    offline = np.concatenate([np.zeros(BUFFER_CHUNKS * CHUNK, np.float32),
                              s.process(np.pad(expected[BUFFER_CHUNKS * CHUNK:], (0, len(y))))])[:len(y)]
    segment = slice(BUFFER_CHUNKS * CHUNK + lead, min(len(y), BUFFER_CHUNKS * CHUNK + lead + len(x)))
    a, b = y[segment], offline[segment]
    assert np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)) > 0.999
    assert abs(20 * np.log10(np.std(a) / np.std(b))) < 0.1  # level, in dB
    assert np.abs(a - b).max() < 1e-3  # 16-bit recording of the same numbers


def _find_onset(d: Denoiser, x: np.ndarray, y: np.ndarray) -> tuple[int, float]:
    """Where the clip starts in the live stream's input: the offline output of the clip's first
    0.4 s, started at each phase of the hop grid, cross-correlated with the recording."""
    head = x[: int(0.4 * RATE)]
    best = (0, -1.0)
    n = 1 << int(np.ceil(np.log2(len(y) + len(head))))
    y_spectrum = np.fft.rfft(y, n)
    cumulative = np.concatenate([[0.0], np.cumsum(y.astype(np.float64) ** 2)])
    window_energy = cumulative[len(head):] - cumulative[:-len(head)]  # sum of y**2 over each window
    for phase in range(HOP_PERIOD):
        s = d.stream(RATE)
        lead_in = 20 * HOP_PERIOD + phase
        ref = s.process(np.concatenate([np.zeros(lead_in, np.float32), head]))[lead_in:]
        corr = np.fft.irfft(y_spectrum * np.conj(np.fft.rfft(ref, n)), n)[: len(y) - len(ref)]
        energy = np.sqrt(window_energy[: len(corr)]) * np.linalg.norm(ref)
        ncc = np.where(energy > 1e-3 * np.linalg.norm(ref) ** 2, corr / np.maximum(energy, 1e-12), 0.0)
        k = int(np.argmax(ncc))
        if ncc[k] > best[1]:
            best = (k - BUFFER_CHUNKS * CHUNK, float(ncc[k]))
    return best
