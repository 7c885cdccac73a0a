"""Files still being written (issue 22): the folder watcher scores every window of every file
exactly once, following a growing WAV as a stream (its header not final yet) and waiting for
other formats to settle. Synthetic machine sound, the tiny fixture model; nothing reads ../shared."""
from __future__ import annotations

import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from streamae.anomaly.alerts import AlertPolicy
from streamae.anomaly.follow import WavFollower
from streamae.anomaly.monitor import Monitor, watch_folder
from streamae.anomaly.scorer import AnomalyModel

from support.signals import RATE, machine


@pytest.fixture(scope="module")
def model(tiny_anomaly_model) -> AnomalyModel:
    return AnomalyModel(tiny_anomaly_model)


def wav_header(channels: int = 1, rate: int = RATE, bits: int = 16, data_size: int = 0) -> bytes:
    """A PCM WAV header as a recorder writes it before it knows the length (sizes 0)."""
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    return (b"RIFF" + struct.pack("<I", 0 if data_size == 0 else 36 + data_size) + b"WAVE" + b"fmt "
            + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", data_size))


def pcm16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def test_a_wav_with_a_placeholder_header_is_read_as_far_as_its_data_goes(tmp_path):
    x = machine(1.0, 1)
    path = tmp_path / "rec.wav"
    path.write_bytes(wav_header()[:30])  # the header itself not complete yet
    f = WavFollower(path)
    assert f.read_new().shape[1] == 0
    data = pcm16(x)
    path.write_bytes(wav_header() + data[:8001])  # sizes 0, and half a sample at the end
    a = f.read_new()
    assert a.shape == (1, 4000)
    with open(path, "ab") as out:
        out.write(data[8001:])
    b = f.read_new()
    assert b.shape == (1, RATE - 4000) and f.read_new().shape[1] == 0  # each frame once
    np.testing.assert_allclose(np.concatenate([a, b], axis=1)[0], x, atol=3 / 32767)
    for placeholder in (0xFFFFFFFF,):
        head = bytearray(wav_header())
        head[40:44] = struct.pack("<I", placeholder)
        path.write_bytes(bytes(head) + data)
        assert WavFollower(path).read_new().shape == (1, RATE)
    # a final header stops at the data's end, whatever chunk follows
    path.write_bytes(wav_header(data_size=len(data)) + data + b"LIST" + struct.pack("<I", 4) + b"abcd")
    assert WavFollower(path).read_new().shape == (1, RATE)
    sf.write(tmp_path / "float.wav", np.stack([x, -x], 1), RATE, subtype="FLOAT")
    y = WavFollower(tmp_path / "float.wav").read_new()
    assert y.shape == (2, RATE) and np.allclose(y[1], -x)


def record(path: Path, x: np.ndarray, chunk_s: float, every_s: float, finalise: bool) -> None:
    """A recorder: a header with placeholder sizes, then `chunk_s` of audio every `every_s`
    (as `dd conv=notrunc` would grow it); the header's sizes fixed at the end if `finalise`."""
    data = pcm16(x)
    step = int(chunk_s * RATE) * 2
    with open(path, "wb") as f:
        f.write(wav_header())
        for i in range(0, len(data), step):
            f.write(data[i:i + step])
            f.flush()
            time.sleep(every_s)
        if finalise:
            f.seek(0)
            f.write(wav_header(data_size=len(data)))


@pytest.mark.parametrize("finalise", [False, True])
def test_the_watcher_follows_a_file_being_recorded_and_scores_each_window_once(model, tmp_path, finalise):
    """The issue's case: a recorder writes 2 s at a time into a watched folder (here every 0.15 s,
    polled every 0.05 s) with a fault at the end of the recording: every window is scored once,
    with the scores the whole file gets, and the fault is alerted."""
    folder = tmp_path / "incoming"
    folder.mkdir()
    normal, broken = machine(16.0, 3), machine(16.0, 3, True)
    x = np.concatenate([normal[:10 * RATE], broken[10 * RATE:]])
    mon = Monitor(model, AlertPolicy(), [])
    t = threading.Thread(target=watch_folder, args=(mon, folder, 0.05, False, 0.5),
                         kwargs={"settle_s": 0.5})
    t.start()
    time.sleep(0.1)
    record(folder / "rec.wav", x, 2.0, 0.15, finalise)
    t.join(30)
    assert not t.is_alive()
    whole = Monitor(model, AlertPolicy(), [])
    (tmp_path / "whole.wav").write_bytes(wav_header(data_size=len(pcm16(x))) + pcm16(x))  # the same samples
    whole.feed_file(tmp_path / "whole.wav")
    assert len(mon.history) == len(whole.history) == 29  # 16 s: 2 s windows every 0.5 s
    assert [w.start_s for w in mon.history] == [w.start_s for w in whole.history]
    np.testing.assert_allclose([w.score for w in mon.history], [w.score for w in whole.history], rtol=1e-5)
    assert [e["event"] for e in mon.events if e["event"].startswith("anomaly")][:1] == ["anomaly_start"]


def test_other_formats_wait_until_the_file_has_settled(model, tmp_path):
    folder = tmp_path / "incoming"
    folder.mkdir()
    mon = Monitor(model, AlertPolicy(), [])
    t = threading.Thread(target=watch_folder, args=(mon, folder, 0.05, False, 0.5),
                         kwargs={"settle_s": 0.6})
    t.start()
    x = machine(6.0, 4)
    path = folder / "a.flac"
    sf.write(path, x[:2 * RATE], RATE)  # a first, short version: not scored
    time.sleep(0.3)
    sf.write(path, x, RATE)
    t.join(20)
    assert not t.is_alive()
    assert len(mon.history) == 9 and mon.history[-1].end_s == pytest.approx(6.0, abs=0.1)
