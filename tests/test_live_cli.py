"""`streamae live` without hardware: files through the live worker, device errors, options."""
from __future__ import annotations

import re
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from streamae import Denoiser, live
from streamae.cli import main

from conftest import REPO, noise, speechlike


def run_live(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "streamae", "live", *args], capture_output=True, text=True, cwd=REPO
    )


def test_file_through_the_worker_equals_offline(tiny_model, tmp_path):
    """As fast as possible: lossless, the offline output delayed by the printed latency."""
    rate = 48000
    x = np.stack([speechlike(2.3, rate, seed=5) + noise(2.3, rate, seed=6), noise(2.3, rate, seed=7)], axis=1)
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, x, rate, subtype="FLOAT")
    r = run_live("--input-file", str(src), "--record", str(dst), "--model", str(tiny_model))
    assert r.returncode == 0, r.stderr
    d = Denoiser(tiny_model)
    lag = d.stream(rate).latency_samples
    assert f"latency {1000 * lag / rate:.1f} ms" in r.stderr
    y, _ = sf.read(dst, dtype="float32")
    assert y.shape == x.shape and sf.info(str(dst)).subtype == "FLOAT"
    offline = d.process(x.T, rate).T
    np.testing.assert_allclose(y[lag:], offline[:len(x) - lag], atol=1e-5)
    assert np.abs(y[:lag]).max() < np.abs(y[lag:]).max()


def test_realtime_file_is_paced_like_a_device(tiny_model, tmp_path):
    """--realtime: the live callback path; each 10 ms block is either processed or, if the
    machine was too slow, the input passed through; never missing, never shifted."""
    rate, n = 16000, 160
    x = speechlike(1.0, rate) + noise(1.0, rate)
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, x, rate, subtype="FLOAT")
    r = run_live("--input-file", str(src), "--record", str(dst), "--model", str(tiny_model), "--realtime",
                 "--buffer-chunks", "2", "--atten-lim-db", "0")  # dry only: processed == input, delayed
    assert r.returncode == 0, r.stderr
    y, _ = sf.read(dst, dtype="float32")
    d = Denoiser(tiny_model, atten_lim_db=0)
    s = d.stream(rate)
    processed = np.concatenate([np.zeros(2 * n, np.float32), s.process(x)])[:len(x)]
    dry = np.concatenate([np.zeros(2 * n + s.latency_samples, np.float32), x])[:len(x)]
    assert len(y) == len(x)
    for k in range(len(x) // n):
        got = y[k * n:(k + 1) * n]
        assert np.allclose(got, processed[k * n:(k + 1) * n], atol=1e-6) or \
            np.array_equal(got, dry[k * n:(k + 1) * n]), k
    # the dry mix hides what the model did (the test above checks that), so check it ran at all
    done = re.search(r"live: done: rtf [\d.]+, blocks (\d+)/(\d+)", r.stderr)
    processed, blocks = map(int, done.groups()[:2])
    assert blocks == len(x) // n and processed >= 0.8 * blocks, done.group(0)


def test_input_file_needs_record_and_record_is_not_overwritten(tiny_model, tmp_path):
    src = tmp_path / "in.wav"
    sf.write(src, speechlike(0.3), 16000)
    r = run_live("--input-file", str(src), "--model", str(tiny_model))
    assert r.returncode == 1 and "--record" in r.stderr
    dst = tmp_path / "keep.wav"
    dst.write_bytes(b"keep")
    r = run_live("--input-file", str(src), "--record", str(dst), "--model", str(tiny_model))
    assert r.returncode == 1 and "already exists" in r.stderr and dst.read_bytes() == b"keep"


class FakeSoundDevice(SimpleNamespace):
    """What sounddevice reports on a machine with the given devices (no PortAudio needed)."""

    def __init__(self, devices, default=(-1, -1)):
        super().__init__(default=SimpleNamespace(device=list(default)), _devices=devices)

    def query_devices(self, index=None):
        return self._devices if index is None else self._devices[index]


def dev(name, inputs, outputs):
    return {
        "name": name,
        "max_input_channels": inputs,
        "max_output_channels": outputs,
        "default_samplerate": 48000.0,
    }


@pytest.fixture
def fake_devices(monkeypatch):
    def install(devices, default=(-1, -1)):
        fake = FakeSoundDevice(devices, default)
        monkeypatch.setattr(live, "sounddevice", lambda: fake)
        return fake
    return install


def test_missing_device_names_what_is_there(fake_devices, capsys):
    fake_devices([dev("USB Mic", 1, 0), dev("HDMI out", 0, 2), dev("pulse", 32, 32)], default=(2, 2))
    assert live.resolve_device(None, "input") == 2
    assert live.resolve_device("usb", "input") == 0
    assert live.resolve_device("2", "output") == 2
    assert main(["live", "--input-device", "studio mic", "--duration", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "streamae: error: input device 'studio mic' not found; input devices: 0 'USB Mic'; 2 'pulse'"
    ]
    assert main(["live", "--output-device", "0", "--input-device", "0"]) == 1
    assert "no output device with index 0; output devices: 1 'HDMI out'; 2 'pulse'" in capsys.readouterr().err


def test_no_input_device_at_all(fake_devices, capsys):
    fake_devices([dev("HDMI out", 0, 2)])
    assert main(["live", "--record", "x.wav", "--duration", "1"]) == 1
    assert capsys.readouterr().err.strip() == \
        "streamae: error: no input device found (is a sound server or card available?)"


def test_list_devices(fake_devices, capsys):
    fake_devices([dev("USB Mic", 1, 0)])
    assert main(["live", "--list-devices"]) == 0
    assert "USB Mic" in capsys.readouterr().out


def test_list_devices_without_any_device_says_so(fake_devices, capsys):
    fake_devices([])
    assert main(["live", "--list-devices"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == ("streamae: error: no audio devices found (is a sound card or a sound "
                                    "server such as PulseAudio or PipeWire available to this user?)")
