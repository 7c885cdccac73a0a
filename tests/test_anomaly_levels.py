"""Silence and level are not faults (issue 22): silent windows are a state, never scored; the
features do not explode on quiet or mixed windows; start/stop ramps and +-20 dB gain steps raise
no alert; the level alert is opt-in. Synthetic machine sound and the tiny fixture model; nothing
here reads ../shared."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from streamae.anomaly.alerts import AlertPolicy
from streamae.anomaly.features import (
    RUNNING,
    SILENT,
    TRANSITION,
    FeatureConfig,
    frame_levels,
    logmel,
    normalise,
    window_state,
)
from streamae.anomaly.monitor import Monitor
from streamae.anomaly.scorer import AnomalyModel
from streamae.cli import main

from conftest import REPO
from support.signals import RATE, machine

DEMO = REPO / "models" / "anomaly-mimii-id00.onnx"
CFG = FeatureConfig()


def db(x):
    return 10 ** (x / 20)


def floor(seconds: float, dbfs: float | None, seed: int = 0) -> np.ndarray:
    """Digital silence (None) or white noise at `dbfs` RMS."""
    n = int(seconds * RATE)
    if dbfs is None:
        return np.zeros(n, np.float32)
    return (db(dbfs) * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def ramp(x: np.ndarray, seconds: float, up: bool) -> np.ndarray:
    g = np.linspace(0, 1, min(len(x), int(seconds * RATE)))
    env = np.ones(len(x))
    if up:
        env[:len(g)] = g
    else:
        env[len(x) - len(g):] = g[::-1]
    return (x * env).astype(np.float32)


@pytest.fixture(scope="module")
def model(tiny_anomaly_model) -> AnomalyModel:
    return AnomalyModel(tiny_anomaly_model)


def test_levels_read_in_dbfs_and_windows_have_states():
    x = machine(3.0, 1)  # 0.05 RMS: -26 dBFS
    levels = frame_levels(logmel(x, CFG), CFG)
    assert abs(float(np.median(levels)) - 20 * np.log10(0.05)) < 3
    assert frame_levels(logmel(floor(1, -75), CFG), CFG).mean() == pytest.approx(-75, abs=1.5)
    assert window_state(levels[:122], CFG) == RUNNING
    assert window_state(np.full(122, -100.0), CFG) == SILENT
    assert window_state(np.r_[np.full(20, -100.0), levels[:102]], CFG) == TRANSITION


def test_per_frame_features_ignore_gain_steps_inside_a_window_and_stay_finite():
    x = machine(2.0, 2)
    half = len(x) // 2
    stepped = np.r_[x[:half] * db(-20), x[half:] * db(20)].astype(np.float32)
    for norm, near in (("frame", 4), ("smooth", 19)):  # frames that see the step: its own, or 0.5 s
        a, b = normalise(logmel(x, CFG)[:, :122], norm), normalise(logmel(stepped, CFG)[:, :122], norm)
        assert np.abs(a - b)[:, :61 - near].max() < 0.05 and np.abs(a - b)[:, 62 + near:].max() < 0.05
        mixed = normalise(logmel(np.r_[np.zeros(half, np.float32), x[half:]], CFG)[:, :122], norm)
        assert np.isfinite(mixed).all() and np.abs(mixed).max() < 100
    ramped = normalise(logmel(ramp(x, 2.0, up=True), CFG)[:, :122], "smooth")  # a ramp: a slow level change
    assert np.abs(ramped - normalise(logmel(x, CFG)[:, :122], "smooth"))[:, 30:].max() < 0.5


def test_silence_then_machine_is_a_state_not_an_anomaly(model, tmp_path, capsys):
    """The issue's first case: 1.5 s of digital silence (or a -75 dBFS floor) before normal sound."""
    for i, quiet in enumerate((None, -75.0)):
        x = np.concatenate([floor(1.5, quiet), machine(12.0, 3)])
        sf.write(tmp_path / f"s{i}.wav", x, RATE)
    sf.write(tmp_path / "off.wav", floor(6.0, None), RATE)
    assert main(["anomaly", "score", *(str(tmp_path / f) for f in ("s0.wav", "s1.wav", "off.wav")),
                 "--model", str(model.path), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["anomalous"] for r in rows] == [False, False, False]
    assert rows[0]["silent_windows"] + rows[0]["transition_windows"] >= 3 and not rows[0]["silent"]
    assert rows[2]["silent"] and rows[2]["windows"] == 0 and rows[2]["score"] == 0.0


def day_of_a_machine(seed: int) -> np.ndarray:
    """One machine through a day: off (digital silence, a -75 dBFS floor), 1 s start and stop
    ramps, and gain steps of -20, -14, +6 and +20 dB while it runs."""
    plan = [("off", 2.0, None), ("on", 6.0, 0), ("on", 6.0, -20), ("on", 6.0, -14), ("stop", 1.0, -14),
            ("off", 3.0, -75), ("start", 1.0, 0), ("on", 6.0, 0), ("on", 6.0, 6), ("on", 6.0, 20),
            ("on", 4.0, 0), ("stop", 1.0, 0), ("off", 2.0, None), ("start", 1.0, 0), ("on", 6.0, 0)]
    x = 0.4 * machine(sum(p[1] for p in plan), seed).astype(np.float64)  # -34 dBFS: +20 dB does not clip
    out, i = [], 0
    for what, seconds, level in plan:
        n = int(seconds * RATE)
        seg = x[i:i + n]
        if what == "off":
            seg = floor(seconds, level, seed + i).astype(np.float64)[:len(seg)]
        elif what == "on":
            seg = seg * db(level)
        else:
            room = floor(seconds, -75, seed + i)[:len(seg)]
            seg = ramp(seg * db(level), seconds, up=what == "start") + room
        out.append(seg)
        i += n
    return np.clip(np.concatenate(out), -1, 1).astype(np.float32)


def test_starts_stops_ramps_and_gain_steps_raise_no_alert(model):
    mon = Monitor(model, AlertPolicy(), [])
    x = day_of_a_machine(40)
    mon.feed((x[i:i + 1600][None] for i in range(0, len(x), 1600)), RATE, 1, "day")
    mon.close()
    assert [e for e in mon.events if e["event"].startswith("anomaly")] == [], \
        [(round(w.end_s, 1), w.state[0], round(w.score, 1)) for w in mon.history]
    states = [e["event"] for e in mon.events]
    assert "machine_silent" in states and "machine_running" in states  # reported as a state
    assert {w.state for w in mon.history} == {RUNNING, SILENT, TRANSITION}
    assert all(np.isnan(w.score) for w in mon.history if w.state != RUNNING)


def test_a_fault_after_silence_is_still_alerted(model):
    mon = Monitor(model, AlertPolicy(), [])
    normal, broken = machine(14.0, 5), machine(14.0, 5, True)  # the same machine, then a fault
    x = np.concatenate([floor(2.0, None), normal[:6 * RATE], broken[6 * RATE:]])
    mon.feed((x[i:i + 1600][None] for i in range(0, len(x), 1600)), RATE, 1, "x")
    mon.close()
    starts = [e for e in mon.events if e["event"] == "anomaly_start"]
    assert len(starts) == 1 and 8.0 <= starts[0]["offset_s"] <= 11.0
    end = [e for e in mon.events if e["event"] == "anomaly_end"][0]
    assert end["alert"] == starts[0]["id"] and len({e["id"] for e in mon.events}) == len(mon.events)


def test_the_level_alert_is_off_by_default_and_opt_in(model, tmp_path, capsys):
    x = 0.4 * machine(12.0, 7)  # -34 dBFS, then -14 dBFS: louder, not clipped
    x[6 * RATE:] *= db(20)
    sf.write(tmp_path / "louder.wav", np.clip(x, -1, 1), RATE)
    assert main(["monitor", str(tmp_path / "louder.wav"), "--model", str(model.path)]) == 0
    assert capsys.readouterr().out == ""  # louder is not an anomaly
    assert main(["monitor", str(tmp_path / "louder.wav"), "--model", str(model.path),
                 "--level-alert", "10"]) == 0
    events = [json.loads(line)["event"] for line in capsys.readouterr().out.splitlines()]
    assert events == ["level_start", "level_end"]


@pytest.mark.skipif(not DEMO.exists(), reason="no demo model")
def test_the_demo_model_after_silence_and_after_a_gain_step(tmp_path, capsys):
    """The issue's measurements, on the shipped demo: 1.5 s of silence then the normal example three
    times, and the normal example at 0.1x then at 1x: both normal."""
    x, rate = sf.read(REPO / "examples" / "machine" / "normal.flac", dtype="float32")
    sf.write(tmp_path / "silence.wav", np.concatenate([np.zeros(int(1.5 * rate), np.float32), x, x, x]), rate)
    sf.write(tmp_path / "gain.wav", np.concatenate([0.1 * x, x]), rate)
    files = [tmp_path / "silence.wav", tmp_path / "gain.wav"]
    for level in (-90, -70, -50):  # the noise floors instead of zeros
        room = (db(level) * np.random.default_rng(0).standard_normal(int(1.5 * rate))).astype(np.float32)
        sf.write(tmp_path / f"floor{level}.wav", np.concatenate([room, x, x, x]), rate)
        files.append(tmp_path / f"floor{level}.wav")
    assert main(["anomaly", "score", *map(str, files), "--model", str(DEMO), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["anomalous"] for r in rows] == [False] * 5, rows
    how = AnomalyModel(DEMO).info["calibration"]  # the card states the false alerts an hour to expect
    assert how["expected_false_alerts_per_hour"] <= how["target_false_alerts_per_hour"] * 1.001


def test_the_rate_calibration_matches_a_known_tail():
    """Run levels with an exponential tail (scale 1 above 0): the threshold for one false alert a
    day at 7200 runs an hour is where the tail leaves 1/24 of an hour's runs, plus the margin."""
    from streamae.anomaly.calibrate import _for_rate

    rng = np.random.default_rng(0)
    levels = np.where(rng.random(200_000) < 0.1, rng.exponential(1.0, 200_000), -rng.random(200_000))
    threshold, tail = _for_rate(levels, 0.5, 1 / 24, margin=0.0)
    exact = np.log(0.1 * 7200 * 24)
    assert tail["scale"] == pytest.approx(1.0, rel=0.05)
    assert max(tail["threshold_for_target"], levels.max()) == pytest.approx(threshold)
    assert tail["threshold_for_target"] == pytest.approx(exact, abs=0.2)
    assert tail["expected_per_hour"] <= 1 / 24 * 1.01
    with_margin, _ = _for_rate(levels, 0.5, 1 / 24, margin=1.0)
    assert with_margin == pytest.approx(threshold + tail["scale"], rel=1e-6)
