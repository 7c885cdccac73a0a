"""`streamae denoise`: formats, rates, channels, length, timing, and clear errors."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from streamae import Denoiser
from streamae.cli import main

from conftest import REPO, noise, speechlike


def denoise(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "streamae", "denoise", *args], capture_output=True, text=True, cwd=REPO
    )


@pytest.mark.parametrize("rate,channels,ext,subtype", [
    (44100, 2, "wav", "PCM_24"), (16000, 1, "flac", "PCM_16"), (48000, 1, "ogg", "VORBIS"),
    (22050, 2, "mp3", "MPEG_LAYER_III"), (8000, 1, "wav", "FLOAT"),
])
def test_output_keeps_format_rate_channels_and_length(tiny_model, tmp_path, rate, channels, ext, subtype):
    x = np.stack([speechlike(1.3, rate, seed=c) + noise(1.3, rate, seed=c) for c in range(channels)], axis=1)
    src, dst = tmp_path / f"in.{ext}", tmp_path / f"out.{ext}"
    sf.write(src, x, rate, subtype=subtype)
    assert main(["denoise", str(src), "-o", str(dst), "--model", str(tiny_model)]) == 0
    a, b = sf.info(str(src)), sf.info(str(dst))
    assert (b.samplerate, b.channels, b.subtype, b.format) == (a.samplerate, a.channels, a.subtype, a.format)
    assert b.frames == a.frames
    y, _ = sf.read(dst, always_2d=True, dtype="float32")
    assert np.isfinite(y).all() and np.abs(y).max() > 1e-3
    if subtype in ("PCM_24", "FLOAT"):  # lossless: each channel exactly what the API makes of it
        x_read, _ = sf.read(src, always_2d=True, dtype="float32")
        np.testing.assert_allclose(y, Denoiser(tiny_model).process(x_read.T, rate).T, atol=1e-4)


def test_output_format_follows_the_extension(tiny_model, tmp_path):
    src, dst = tmp_path / "in.wav", tmp_path / "out.flac"
    sf.write(src, speechlike(1.0, 44100), 44100, subtype="PCM_16")
    assert main(["denoise", str(src), "-o", str(dst), "--model", str(tiny_model)]) == 0
    info = sf.info(str(dst))
    assert (info.format, info.subtype, info.samplerate) == ("FLAC", "PCM_16", 44100)


def test_output_equals_the_api_and_is_time_aligned(shipped_model, tmp_path):
    from streamae import Denoiser

    src, dst = REPO / "examples" / "noisy_speech.flac", tmp_path / "clean.wav"
    assert main(["denoise", str(src), "-o", str(dst), "--model", str(shipped_model)]) == 0
    x, rate = sf.read(src, dtype="float32")
    y, _ = sf.read(dst, dtype="float32")
    np.testing.assert_allclose(y, Denoiser(shipped_model).process(x, rate), atol=1e-4)
    clean, _ = sf.read(REPO / "examples" / "clean_speech.flac", dtype="float32")
    lags = np.arange(-400, 401)
    corr = [np.dot(clean[1000:-1000], y[1000 + k:len(y) - 1000 + k]) for k in lags]
    assert lags[int(np.argmax(corr))] == 0  # the model's delay is compensated


def test_errors_are_one_clear_line(tiny_model, tmp_path):
    empty = tmp_path / "empty.wav"
    empty.touch()
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF" + os.urandom(2000))
    good = tmp_path / "good.wav"
    sf.write(good, speechlike(0.5), 16000)
    cases = {
        (str(tmp_path / "missing.wav"), str(tmp_path / "o.wav")): "no such file",
        (str(tmp_path), str(tmp_path / "o.wav")): "is a folder: clean the files in it with --out-dir DIR",
        (str(empty), str(tmp_path / "o.wav")): "empty",
        (str(corrupt), str(tmp_path / "o.wav")): "cannot read audio",
        (str(good), str(tmp_path / "nowhere" / "o.wav")): "output folder does not exist",
        (str(good), str(tmp_path / "o.xyz")): "unknown output format",
    }
    before = sorted(os.listdir(tmp_path))
    for (src, dst), reason in cases.items():
        r = denoise(src, "-o", dst, "--model", str(tiny_model))
        assert r.returncode != 0, (src, dst)
        assert "Traceback" not in r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("streamae: error: ") and reason in lines[0], r.stderr
    assert sorted(os.listdir(tmp_path)) == before  # nothing half-written left behind


def test_input_is_never_overwritten_unless_asked(tiny_model, tmp_path):
    src = tmp_path / "take.wav"
    sf.write(src, speechlike(1.0) + noise(1.0), 16000)
    original = src.read_bytes()
    r = denoise(str(src), "-o", str(src), "--model", str(tiny_model))
    assert r.returncode != 0 and "--overwrite" in r.stderr and src.read_bytes() == original
    r = denoise(str(src), "-o", str(src), "--model", str(tiny_model), "--overwrite")
    assert r.returncode == 0, r.stderr
    assert src.read_bytes() != original and sf.info(str(src)).frames == 16000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.wav"]


def test_existing_output_needs_overwrite(tiny_model, tmp_path):
    src, dst = tmp_path / "a.wav", tmp_path / "b.wav"
    sf.write(src, speechlike(0.5), 16000)
    dst.write_bytes(b"keep me")
    r = denoise(str(src), "-o", str(dst), "--model", str(tiny_model))
    assert r.returncode != 0 and "already exists" in r.stderr and dst.read_bytes() == b"keep me"


def test_failed_write_leaves_no_output(tiny_model, tmp_path, monkeypatch):
    """A failure mid-file (here: the model raising) removes the partial file."""
    from streamae import denoiser as denoiser_module

    src, dst = tmp_path / "a.wav", tmp_path / "b.wav"
    sf.write(src, speechlike(25.0), 16000)
    calls = {"n": 0}
    real = denoiser_module.Denoiser.run_step

    def flaky(self, audio, states):
        calls["n"] += 1
        if calls["n"] > 1:
            raise RuntimeError("simulated crash")
        return real(self, audio, states)

    monkeypatch.setattr(denoiser_module.Denoiser, "run_step", flaky)
    with pytest.raises(RuntimeError, match="simulated crash"):
        main(["denoise", str(src), "-o", str(dst), "--model", str(tiny_model)])
    assert calls["n"] == 2  # the crash came from the model, on its second call: mid-file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav"]


def test_train_export_name_without_onnx_writes_name_onnx(tmp_path, monkeypatch):
    """`train denoiser --export NAME`: its help says it writes NAME.onnx, so NAME is not refused."""
    from streamae.cli import train as train_cli

    seen = {}
    def trainer(module, args):
        seen["export"] = args.export
        return 0

    monkeypatch.setattr(train_cli, "run_trainer", trainer)
    assert main(["train", "denoiser", "--speech", str(tmp_path), "--noise", str(tmp_path),
                 "--export", str(tmp_path / "NAME")]) == 0
    assert seen["export"] == str(tmp_path / "NAME.onnx")
