"""Streaming equals whole-signal output, at any chunk size and rate; latency is as promised."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from streamae import Denoiser, StreamaeError
from streamae.denoiser import MAX_MAGNITUDE

from conftest import noise, speechlike


def run_stream(d: Denoiser, x: np.ndarray, rate: int, chunk: int) -> tuple[np.ndarray, int]:
    s = d.stream(sample_rate=rate)
    outs = []
    for i in range(0, x.shape[-1], chunk):
        piece = x[..., i:i + chunk]
        out = s.process(piece)
        assert out.shape == piece.shape  # exactly one sample out per sample in
        outs.append(out)
    tail = s.flush()
    assert tail.shape[-1] == s.latency_samples
    return np.concatenate(outs + [tail], axis=-1)[..., s.latency_samples:], s.latency_samples


def whole_graph(path, x: np.ndarray, hop: int) -> np.ndarray:
    """The exported whole-signal ONNX graph, run directly (no streamae code in the path)."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    config = json.loads(sess.get_modelmeta().custom_metadata_map["streamae.config"])
    overlap = config["window"] - config["hop"]
    padded = np.pad(x, (0, -(-(len(x) + overlap) // hop) * hop - len(x)))
    return sess.run(None, {"audio": padded[None]})[0][0, : len(x)]


@pytest.mark.parametrize("chunk", [1, 7, 160, 1000])
def test_stream_equals_whole_signal_graph(tiny_model, chunk):
    d = Denoiser(tiny_model)
    x = speechlike(0.5 if chunk == 1 else 2.0) + noise(0.5 if chunk == 1 else 2.0)
    streamed, latency = run_stream(d, x, 16000, chunk)
    reference = whole_graph(tiny_model, x, d.hop)
    assert latency == d.latency_samples
    np.testing.assert_allclose(streamed, reference, atol=1e-4)
    np.testing.assert_allclose(d.process(x, 16000), reference, atol=1e-4)


@pytest.mark.parametrize("chunk", [1, 7, 160, 1000])
def test_shipped_model_streams_exactly(shipped_model, chunk):
    d = Denoiser(shipped_model)
    x = speechlike(0.4 if chunk == 1 else 1.5, seed=3) + noise(0.4 if chunk == 1 else 1.5, seed=4)
    streamed, _ = run_stream(d, x, 16000, chunk)
    np.testing.assert_allclose(streamed, whole_graph(shipped_model, x, d.hop), atol=1e-4)


def test_shipped_model_latency_is_at_most_10_ms(shipped_model):
    d = Denoiser(shipped_model)
    assert d.latency_samples <= 160
    assert d.stream().latency_samples == d.latency_samples
    window = d.info["config"]["window"]
    assert d.latency_samples == window - 1


@pytest.mark.parametrize("rate,chunk", [(44100, 1), (44100, 441), (48000, 480), (8000, 7), (22050, 1000)])
def test_resampled_stream_matches_process(tiny_model, rate, chunk):
    d = Denoiser(tiny_model)
    seconds = 0.3 if chunk == 1 else 1.0
    x = speechlike(seconds, rate) + noise(seconds, rate)
    streamed, latency = run_stream(d, x, rate, chunk)
    assert latency > d.latency_samples * rate / 16000  # resampling adds delay, and it is counted
    np.testing.assert_allclose(streamed, d.process(x, rate), atol=1e-4)


def test_channels_are_cleaned_independently(tiny_model):
    d = Denoiser(tiny_model)
    left, right = speechlike(1.0, seed=5) + noise(1.0, seed=6), noise(1.0, seed=7, level=0.1)
    both = d.process(np.stack([left, right]), 16000)
    assert both.shape == (2, len(left))
    np.testing.assert_allclose(both[0], d.process(left, 16000), atol=1e-5)
    np.testing.assert_allclose(both[1], d.process(right, 16000), atol=1e-5)


@pytest.mark.parametrize("rate", [16000, 48000])
def test_attenuation_limit_mixes_back_the_input_at_full_bandwidth(tiny_model, rate):
    x = speechlike(1.0, rate) + noise(1.0, rate)
    wet = Denoiser(tiny_model).process(x, rate)
    limited = Denoiser(tiny_model, atten_lim_db=20).process(x, rate)
    np.testing.assert_allclose(limited, wet + 0.1 * (x - wet), atol=1e-5)


def test_reset_starts_a_new_signal(tiny_model):
    d = Denoiser(tiny_model)
    x = speechlike(0.5) + noise(0.5)
    s = d.stream(16000)
    s.process(noise(0.3, seed=9))
    s.reset()
    out = np.concatenate([s.process(x), s.flush()])[s.latency_samples:]
    np.testing.assert_allclose(out, d.process(x, 16000), atol=1e-5)


@pytest.mark.parametrize("model", ["tiny_model", "shipped_model"])
def test_digital_silence_stays_finite_and_the_stream_recovers(model, request):
    path = request.getfixturevalue(model)
    d = Denoiser(path)
    x = np.concatenate([np.zeros(8000, np.float32), speechlike(1.0) + noise(1.0)])
    streamed, _ = run_stream(d, x, 16000, 160)
    assert np.isfinite(streamed).all()
    np.testing.assert_allclose(streamed, whole_graph(path, x, d.hop), atol=1e-4)
    assert np.abs(streamed[8000 + 4000:]).max() > 1e-3  # speech after the silence comes through


def test_bad_input_is_refused(tiny_model):
    d = Denoiser(tiny_model)
    with pytest.raises(StreamaeError, match="float"):
        d.process(np.zeros(100, np.int16), 16000)
    with pytest.raises(StreamaeError, match="shape"):
        d.process(np.zeros((1, 2, 3), np.float32), 16000)
    with pytest.raises(StreamaeError, match="channel"):
        d.stream(16000).process(np.zeros((2, 10), np.float32))
    with pytest.raises(StreamaeError, match="not found"):
        Denoiser("no/such/model.onnx")


@pytest.mark.parametrize("rate", [44100, 22050])
def test_long_streams_keep_their_latency_at_fractional_ratios(tiny_model, rate):
    """10 ms chunks for a minute: soxr's streams drifted by tens of samples here and ran dry
    after about 20 s; the stream must hold its promised latency for as long as it runs."""
    d = Denoiser(tiny_model)
    x = noise(60.0, rate, seed=3)
    streamed, _ = run_stream(d, x, rate, rate // 100)
    np.testing.assert_allclose(streamed, d.process(x, rate), atol=1e-4)


def test_a_bad_sample_does_not_poison_the_stream(tiny_model):
    """NaN or inf in the input (a glitching device, a damaged float file) is silenced, and the
    stream goes on cleaning: the state carries nothing non-finite forward."""
    d = Denoiser(tiny_model)
    x = speechlike(1.0) + noise(1.0)
    broken = x.copy()
    broken[[100, 5000]] = [np.nan, np.inf]
    y = d.process(broken, 16000)
    assert np.isfinite(y).all()
    repaired = x.copy()
    repaired[[100, 5000]] = 0
    np.testing.assert_allclose(y, d.process(repaired, 16000), atol=1e-6)


def test_an_absurd_sample_is_clipped_to_max_magnitude_quietly(tiny_model):
    """A finite but absurd value (a float file scaled as if it were int16) is clipped to
    MAX_MAGNITUDE like any other broken sample, with no numpy warning on the way."""
    d = Denoiser(tiny_model)
    x = speechlike(1.0) + noise(1.0)
    broken, clipped = x.copy(), x.copy()
    broken[[100, 5000]] = [5000.0, -3e38]
    clipped[[100, 5000]] = [MAX_MAGNITUDE, -MAX_MAGNITUDE]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = d.process(broken, 16000)
    np.testing.assert_array_equal(y, d.process(clipped, 16000))


def test_input_in_the_wrong_layout_or_model_gives_a_clear_error(tiny_model, tmp_path):
    d = Denoiser(tiny_model)
    stereo = np.stack([noise(0.5), noise(0.5, seed=2)], axis=1)  # soundfile's [samples, channels]
    with pytest.raises(StreamaeError, match=r"use x\.T"):
        d.process(stereo, 16000)
    with pytest.raises(StreamaeError, match="ends in .onnx"):
        Denoiser(tmp_path / "model")
    anomaly = Path(__file__).resolve().parent.parent / "models" / "anomaly-mimii-id00.onnx"
    with pytest.raises(StreamaeError, match="not a streamae denoiser"):
        Denoiser(anomaly)


def test_a_batched_step_graph_from_an_older_export_is_refused_clearly(tmp_path):
    """Step graphs are one channel per call now; an older [batch, samples] one must say so, not
    fail inside onnxruntime on the first chunk."""
    from onnx import TensorProto, helper, save

    old = helper.make_graph(
        [
            helper.make_node("Identity", ["audio"], ["clean"]),
            helper.make_node("Identity", ["state_0"], ["state_0_out"]),
        ],
        "old_step",
        [
            helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["batch", "samples"]),
            helper.make_tensor_value_info("state_0", TensorProto.FLOAT, ["batch", 1, 80]),
        ],
        [
            helper.make_tensor_value_info("clean", TensorProto.FLOAT, ["batch", "samples"]),
            helper.make_tensor_value_info("state_0_out", TensorProto.FLOAT, ["batch", 1, 80]),
        ],
    )
    model = helper.make_model(old, opset_imports=[helper.make_opsetid("", 18)])
    helper.set_model_props(model, {"streamae.kind": "denoiser", "streamae.delay": "80",
                                   "streamae.config": json.dumps({"sample_rate": 16000, "hop": 80})})
    save(model, tmp_path / "old.step.onnx")
    with pytest.raises(StreamaeError, match="batch axis.*re-export"):
        Denoiser(tmp_path / "old.onnx")


@pytest.mark.parametrize("rate", [44100, 48000, 22050])
def test_resampled_latency_is_as_promised_and_no_more(shipped_model, rate):
    """15 ms at these rates (README), and tight: fed one sample at a time, some output sample
    is ready only just in time, so not one sample of the latency is slack."""
    s = Denoiser(shipped_model).stream(rate)
    assert s.latency_ms <= 15.1
    spare = []
    for v in noise(0.15, rate):
        s.process(v[None])
        spare.append(s._fifo.shape[-1])  # output ready beyond what has been returned
    assert min(spare) == 0


@pytest.mark.parametrize("rate,chunk", [(16000, 48), (16000, 250), (44100, 441)])
def test_a_stream_keeps_nothing_of_the_callers_buffer(tiny_model, rate, chunk):
    """The live worker hands the stream one scratch buffer, refilled for every block: what the
    stream keeps between calls (input short of a whole hop) must be a copy, or the next block
    overwrites it. Chunks that are not whole hops leave such input behind."""
    d = Denoiser(tiny_model)
    x = (speechlike(1.0, rate, seed=9) + noise(1.0, rate, seed=10)).astype(np.float32)
    s, scratch, outs = d.stream(rate), np.empty(chunk, np.float32), []
    for i in range(0, len(x) - chunk + 1, chunk):
        scratch[:] = x[i:i + chunk]
        outs.append(s.process(scratch))
        scratch[:] = np.nan  # the caller's next use of its buffer
    y = np.concatenate(outs)
    n, lag = len(y), s.latency_samples
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y[lag:], d.process(x[:n], rate)[: n - lag], atol=1e-5)
