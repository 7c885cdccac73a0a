"""BlockWorker: lossless equals offline; when the model stalls, output stays exact in length
and timing (passthrough, counted) and memory stays bounded."""
from __future__ import annotations

import threading
import time
import tracemalloc

import numpy as np
import pytest

from streamae import Denoiser
from streamae.worker import BlockWorker, FrameRing

from conftest import noise, speechlike

N = 160  # 10 ms at 16 kHz


def _wait_for(condition, timeout: float = 30.0) -> None:
    """Poll until `condition()`; the timeout only guards against a hang, it is not a measurement."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "worker did not get there"
        time.sleep(0.001)


def _drain(worker: BlockWorker, outs: list) -> None:
    while (block := worker.read()) is not None:
        outs.append(block)


@pytest.mark.parametrize("rate,channels", [(16000, 1), (48000, 2)])
def test_lossless_worker_equals_offline(tiny_model, rate, channels):
    d = Denoiser(tiny_model)
    x = np.stack([speechlike(2.0, rate, seed=c) + noise(2.0, rate, seed=c) for c in range(channels)])
    stream = d.stream(rate, channels=channels)
    block = rate // 100
    outs = []
    with BlockWorker(stream.process, block, channels, sample_rate=rate, latency_frames=stream.latency_samples,
                     lossless=True) as w:
        reader = threading.Thread(target=lambda: _drain(w, outs))
        reader.start()
        for start in range(0, x.shape[1], 777):  # feed sizes unrelated to the block size
            w.feed(x[:, start:start + 777].T)
        w.finish()
        reader.join()
    y = np.concatenate(outs).T
    assert y.shape[1] == -(-x.shape[1] // block) * block  # the last block padded, nothing lost
    lag = stream.latency_samples
    offline = d.process(x, rate)
    np.testing.assert_allclose(y[:, lag:x.shape[1]], offline[:, :x.shape[1] - lag], atol=1e-5)
    assert w.stats.processed == w.stats.blocks_in and w.stats.xruns == 0


def test_stalled_model_passes_audio_through_with_exact_length_and_timing():
    """The model blocks for a while: the callback never waits, every output block is either the
    processed block or the input delayed by the same latency, and stale blocks are skipped."""
    latency, slack = 37, 2
    x = (speechlike(3.0) + noise(3.0)).reshape(-1, 1)
    gate = threading.Event()

    def negate_late(block):  # "processing" = negation delayed by `latency` samples
        gate.wait()
        out = np.concatenate([state["tail"], -block], axis=1)
        state["tail"] = out[:, -latency:]
        return out[:, :block.shape[1]]

    state = {"tail": np.zeros((1, latency), np.float32)}
    w = BlockWorker(negate_late, N, 1, sample_rate=16000, latency_frames=latency, slack_blocks=slack,
                    history_seconds=0.5).start()
    out = np.zeros_like(x)
    blocks = len(x) // N
    tracemalloc.start()
    for k in range(blocks):
        if k == 100:
            gate.set()  # the model recovers
        if k >= 100:  # from here on, give the worker time to keep up before each callback
            _wait_for(lambda: w._next >= k - slack + 1 or w.stats.processed + w.stats.skipped >= k)
        w.process(x[k * N:(k + 1) * N], out[k * N:(k + 1) * N])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    w.stop()

    delayed = np.concatenate([np.zeros((latency + slack * N, 1), np.float32), x])[:len(x)]
    kinds = []
    for k in range(slack, blocks):
        got, dry = out[k * N:(k + 1) * N], delayed[k * N:(k + 1) * N]
        kinds.append("processed" if np.array_equal(got, -dry) else "dry" if np.array_equal(got, dry) else
                     "seam" if np.array_equal(got[latency:], -dry[latency:]) else "other")
    assert "other" not in kinds
    # after a skip, the model's first `latency` samples still come from before the gap; nothing else differs
    assert all(kinds[i - 1] == "dry" for i, kind in enumerate(kinds) if kind == "seam")
    assert kinds[:100 - slack] == ["dry"] * (100 - slack)  # stalled: all passthrough, none missing
    assert kinds[-50:] == ["processed"] * 50  # recovered, and still aligned: no drift
    stats = w.stats
    assert stats.passthrough == kinds.count("dry") and stats.skipped > 0
    assert stats.xruns >= stats.passthrough
    assert peak < 200_000  # bytes allocated while running 3 s of audio: nothing accumulates


def test_monitor_mode_without_output_skips_what_it_cannot_keep():
    """No output (an analysis function): a stalled function loses old blocks, counted, and
    resumes on recent ones; memory is the fixed ring."""
    seen, gate = [], threading.Event()

    def score(block):
        gate.wait()
        seen.append(float(block[0, 0]))

    w = BlockWorker(score, N, 1, sample_rate=16000, output=False, history_seconds=0.1).start()
    ring_bytes = w._in.buf.nbytes
    for k in range(100):  # 1 s of blocks whose first sample is their index
        w.push(np.full((N, 1), k, np.float32))
    gate.set()
    _wait_for(lambda: w._next * N >= w._in.end - N)
    w.stop()
    assert w._in.buf.nbytes == ring_bytes == 1600 * 4
    assert seen[-1] == 99 and seen == sorted(seen) and len(seen) < 100
    assert w.stats.skipped == 100 - len(seen) > 0 and w.stats.processed == len(seen)


def test_errors_in_process_block_reach_the_caller():
    def broken(block):
        raise ValueError("model exploded")

    w = BlockWorker(broken, N, 1, sample_rate=16000, lossless=True).start()
    w.feed(np.zeros((N * 3, 1), np.float32))
    with pytest.raises(ValueError, match="model exploded"):
        w.read()
    w.stop()


def test_frame_ring_wraps_and_reports_overwritten_frames():
    r = FrameRing(10, 1)
    r.write(np.arange(7, dtype=np.float32).reshape(-1, 1))
    r.write(np.arange(7, 14, dtype=np.float32).reshape(-1, 1))
    out = np.zeros((5, 1), np.float32)
    assert r.read(9, out) and out[:, 0].tolist() == [9, 10, 11, 12, 13]
    assert not r.read(3, out)  # overwritten
    assert not r.read(12, out)  # not written yet
    assert r.read(-2, np.zeros((2, 1), np.float32))  # before the start: silence
