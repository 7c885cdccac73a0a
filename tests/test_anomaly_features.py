"""Anomaly front end, metrics and alert logic: numbers against references, no model needed."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from streamae.anomaly import metrics
from streamae.anomaly.alerts import AlertPolicy, Hysteresis, alert_level
from streamae.anomaly.features import (
    FeatureConfig,
    FeatureStream,
    WindowCutter,
    file_frames,
    logmel,
    mel_filterbank,
    normalise,
    window_at,
    window_starts,
)
from streamae.anomaly.scorer import WindowScore
from streamae.errors import StreamaeError

CFG = FeatureConfig()


def hum(seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(100 * (1 + 0.01 * np.sin(2 * np.pi * 0.3 * t))) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 30))
    return (0.05 * x + 0.005 * rng.standard_normal(len(t))).astype(np.float32)


def test_streaming_in_any_blocks_gives_the_whole_signal_frames_exactly():
    x = hum(3.0)
    whole = logmel(x, CFG)
    s = FeatureStream(CFG, 16000)
    sizes = np.random.default_rng(1).integers(1, 3000, 200)
    parts, i = [], 0
    for n in sizes:
        parts.append(s.process(x[i:i + n]))
        i += n
    parts += [s.process(x[i:]), s.flush()]
    streamed = np.concatenate(parts, axis=1)
    assert whole.shape == (CFG.bands, 1 + (len(x) - CFG.n_fft) // CFG.hop)
    np.testing.assert_array_equal(streamed, whole)


def test_training_windows_equal_runtime_windows(tmp_path):
    """Training reads files with file_frames + window_at; the runtime streams FeatureStream +
    WindowCutter in small blocks. Same file (44.1 kHz stereo: downmix and resampling
    included) -> identical windows."""
    rate = 44100
    x = np.stack([hum(5.0, rate, seed=0), 0.5 * hum(5.0, rate, seed=1)], axis=1)
    path = tmp_path / "machine.wav"
    sf.write(path, x, rate, subtype="FLOAT")
    frames = file_frames(path, CFG)
    hop = CFG.frames_for(0.5)
    training = np.stack([window_at(frames, s, CFG) for s in window_starts(frames.shape[1], CFG, hop)])

    stream, cutter, runtime = FeatureStream(CFG, rate, 2), WindowCutter(CFG, hop), []
    for i in range(0, len(x), 4410):  # 0.1 s blocks, as the monitor reads the microphone
        runtime.append(cutter.process(stream.process(x[i:i + 4410].T))[0])
    runtime.append(cutter.process(stream.flush())[0])
    runtime = np.concatenate(runtime)
    assert training.shape == runtime.shape and len(training) >= 6
    np.testing.assert_array_equal(training, runtime)


def test_features_ignore_level_but_see_spectrum():
    x = hum(2.0)
    a = normalise(logmel(x, CFG)[:, :CFG.window_frames])
    b = normalise(logmel(0.03 * x, CFG)[:, :CFG.window_frames])
    np.testing.assert_allclose(a, b, atol=2e-3)  # 30 dB quieter: same features
    t = np.arange(len(x)) / 16000
    c = normalise(
        logmel(x + 0.05 * np.sin(2 * np.pi * 3000 * t).astype(np.float32), CFG)[:, : CFG.window_frames]
    )
    band = int(np.argmax(mel_filterbank(CFG)[:, round(3000 * CFG.n_fft / 16000)]))
    assert (c - a)[band].mean() > 10  # a new 3 kHz tone lifts its band by > 10 dB


def test_mel_filterbank_covers_the_range():
    fb = mel_filterbank(CFG)
    assert fb.shape == (64, CFG.n_fft // 2 + 1) and fb.max() <= 1.0
    centres_hz = np.argmax(fb, axis=1) * 16000 / CFG.n_fft
    assert np.all(np.diff(centres_hz) > 0) and 50 < centres_hz[0] < 120 and 6000 < centres_hz[-1] < 7000


def test_auc_matches_mann_whitney_with_ties():
    rng = np.random.default_rng(0)
    n, a = np.round(rng.normal(0, 1, 300), 1), np.round(rng.normal(0.8, 1, 200), 1)
    wins = (a[:, None] > n[None]).mean() + 0.5 * (a[:, None] == n[None]).mean()
    assert metrics.auc(n, a) == pytest.approx(wins, abs=1e-12)
    assert metrics.auc(n, n + 100) == 1.0 and metrics.auc(n + 100, n) == 0.0
    assert metrics.auc(np.zeros(10), np.zeros(5)) == pytest.approx(0.5)


def test_pauc_and_tpr_at_fpr():
    n, a = np.arange(100.0), np.arange(100.0) + 1000
    assert metrics.pauc(n, a) == pytest.approx(1.0) and metrics.tpr_at_fpr(n, a) == 1.0
    assert metrics.pauc(a, n) == pytest.approx(0.0)
    # 1 normal of 100 above every anomaly except half of them -> at FPR <= 1 %: TPR 0.5
    n2, a2 = np.r_[np.zeros(99), 10.0], np.r_[np.full(50, 20.0), np.full(50, 5.0)]
    assert metrics.tpr_at_fpr(n2, a2, 0.01) == 1.0 and metrics.tpr_at_fpr(n2, a2, 0.0) == 0.5
    assert metrics.pauc(np.zeros(50), np.zeros(50)) == pytest.approx(0.05)  # chance


def _windows(scores: list[float], hop: float = 0.5) -> list[WindowScore]:
    return [WindowScore(i * hop, i * hop + 2.0, s) for i, s in enumerate(scores)]


def _events(scores: list[float], policy: AlertPolicy) -> list[dict]:
    h = Hysteresis(1.0, policy)
    events = [e for w in _windows(scores) if (e := h.update(w))]
    if (e := h.close(_windows(scores)[-1])):
        events.append(e)
    return events


def test_one_flickering_fault_is_one_alert():
    normal, fault = [0.5] * 20, [2.0, 2.0, 0.5, 2.0, 2.0, 2.0, 0.5, 2.0, 2.0, 0.5, 2.0, 2.0]
    events = _events(normal + fault + normal, AlertPolicy(k=3, n=4, cooldown_s=0))
    assert [e["event"] for e in events] == ["anomaly_start", "anomaly_end"]
    start, end = events
    assert 10.0 <= start["onset_s"] <= start["offset_s"] <= 10.0 + 2.0 + 4 * 0.5
    assert set(start) >= {"event", "time", "offset_s", "score", "threshold"} and start["threshold"] == 1.0
    assert end["offset_s"] > start["offset_s"] and end["peak_score"] == 2.0


@pytest.mark.parametrize("k, n", [(3, 4), (1, 1), (2, 5), (4, 4)])
def test_a_file_is_anomalous_exactly_when_the_monitor_would_alert(k, n):
    """alert_level(scores) > threshold <=> Hysteresis starts an alert, for any scores and threshold
    (recordings of at least k windows; shorter ones get a verdict the monitor cannot give)."""
    rng = np.random.default_rng(k * 10 + n)
    policy = AlertPolicy(k=k, n=n, cooldown_s=0)
    for _ in range(300):
        scores = rng.gamma(2.0, 0.5, rng.integers(k, 30)).round(1)  # rounded: ties at the threshold too
        threshold = float(rng.choice(scores)) if rng.random() < 0.5 else float(rng.uniform(0, 3))
        h = Hysteresis(threshold, policy)
        alerted = any(h.update(w) for w in _windows(list(scores)))
        assert (alert_level(scores, policy) > threshold) == alerted


def test_alert_level_of_short_recordings_and_errors():
    policy = AlertPolicy(k=3, n=4)
    assert alert_level([5.0, 0.1], policy) == 0.1  # fewer than k windows: all must be above
    assert alert_level([0.1, 5.0, 4.0, 3.0, 0.1], policy) == 3.0
    with pytest.raises(StreamaeError, match="no window scores"):
        alert_level([], policy)


def test_isolated_spikes_never_alert():
    assert _events([0.5, 0.5, 3.0, 0.5, 0.5, 3.0, 0.5, 0.5, 0.5, 3.0, 0.5] * 4, AlertPolicy(k=3, n=4)) == []


def test_cooldown_merges_a_quick_relapse_but_not_a_later_fault():
    burst = [2.0] * 6
    quick = [0.5] * 20 + burst + [0.5] * 10 + burst + [0.5] * 10  # relapse 5 s after the end
    late = [0.5] * 20 + burst + [0.5] * 80 + burst + [0.5] * 10  # 40 s later
    starts = lambda ev: sum(e["event"] == "anomaly_start" for e in ev)  # noqa: E731
    assert starts(_events(quick, AlertPolicy(cooldown_s=30))) == 1
    assert starts(_events(quick, AlertPolicy(cooldown_s=0))) == 2
    assert starts(_events(late, AlertPolicy(cooldown_s=30))) == 2


def test_open_alert_is_closed_at_the_end_of_the_stream():
    events = _events([0.5] * 10 + [2.0] * 10, AlertPolicy())
    assert [e["event"] for e in events] == ["anomaly_start", "anomaly_end"]
    assert events[-1]["reason"] == "stream ended"


def test_bad_policy_is_a_user_error():
    with pytest.raises(StreamaeError, match="k <= n"):
        AlertPolicy(k=5, n=4)
