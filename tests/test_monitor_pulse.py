"""`streamae monitor mic` end to end, through a private PulseAudio server left at its defaults:

    paplay 16 kHz clip -> 48 kHz "mic" null sink -> PortAudio/ALSA pulse plugin -> monitor mic

The clip is the shipped demo machine's normal example after 1.5 s of digital silence, the case
that once alerted at 888.6 and scored normal windows about 6x higher than the same file read
directly: asked for the model's 16 kHz, the server converted with its default resampler, which
dulls the top bands the model listens to. Opened at the device's own rate, the microphone must
score what the file scores. Skipped only where PulseAudio or PortAudio is missing (see
support.pulse_loopback.require_pulse).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from conftest import REPO
from support.pulse_loopback import PulseLoopback, require_pulse

MODEL = REPO / "models" / "anomaly-mimii-id00.onnx"
NORMAL = REPO / "examples" / "machine" / "normal.flac"
SILENCE_S, REPEATS = 1.5, 2


def test_microphone_scores_what_the_file_scores(tmp_path):
    require_pulse()
    x, rate = sf.read(NORMAL, dtype="float32")
    clip = tmp_path / "clip.wav"
    sf.write(clip, np.concatenate([np.zeros(int(SILENCE_S * rate), np.float32), *[x] * REPEATS]), rate)
    mic_events, mic_scores = _monitor("mic", tmp_path / "mic.jsonl", clip)
    file_events, file_scores = _monitor(str(clip), tmp_path / "file.jsonl")

    assert file_scores and not [e for e in file_events if e["event"] == "anomaly_start"]
    assert [e["event"] for e in mic_events][:2] == ["machine_silent", "machine_running"], mic_events
    assert not [e for e in mic_events if e["event"] == "anomaly_start"], mic_events
    assert len(mic_scores) >= 0.8 * len(file_scores), (mic_scores, file_scores)
    ratio = np.median(mic_scores) / np.median(file_scores)
    assert 0.5 < ratio < 2.0, (mic_scores, file_scores)


def _monitor(source: str, scores: Path, clip: Path | None = None) -> tuple[list[dict], list[float]]:
    """Alerts and the scored windows' scores; for 'mic', the clip is played once the monitor has
    heard 2 s (its first window, the machine silent)."""
    command = [sys.executable, "-m", "streamae", "monitor", source, "--model", str(MODEL),
               "--scores", str(scores)]
    if clip is None:
        out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60, check=True).stdout
    else:
        seconds = 2.0 + SILENCE_S + REPEATS * sf.info(NORMAL).duration + 1.5
        with PulseLoopback(rate=48000) as pulse:
            mon = subprocess.Popen([*command, "--duration", str(seconds)], cwd=REPO, env=pulse.env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            first = mon.stdout.readline()
            assert first, mon.stderr.read()
            subprocess.run(["paplay", "--device=mic", str(clip)], env=pulse.env, check=True, timeout=30)
            rest, err = mon.communicate(timeout=60)
            assert mon.returncode == 0, err
            out = first + rest
    windows = [json.loads(line) for line in scores.read_text().splitlines()]
    events = [json.loads(line) for line in out.splitlines()]
    return events, [w["score"] for w in windows if w["score"] is not None]
