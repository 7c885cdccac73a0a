"""The GTCRN port: models/gtcrn-dns3 (the weights `quality` was fine-tuned from) computes what its
authors' model computes.

The authors' streaming ONNX is a test fixture (tests/fixtures/gtcrn, MIT); the ported weights
are shipped (models/gtcrn-dns3.*). scripts/release/port_gtcrn.py proves the same on the dev mix.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamae import Denoiser
from streamae.anchors import GTCRNReference

from conftest import REPO, noise, speechlike

AUTHORS_ONNX = Path(__file__).parent / "fixtures" / "gtcrn" / "gtcrn_simple.onnx"
SHIPPED_PT = REPO / "models" / "gtcrn-dns3.pt"


@pytest.fixture(scope="module")
def noisy() -> np.ndarray:
    return (speechlike(4.0, seed=3) + noise(4.0, seed=4, level=0.02)).astype(np.float32)


@pytest.fixture(scope="module")
def authors(noisy) -> np.ndarray:
    """The authors' output, lagging the input by one hop (256 samples)."""
    return GTCRNReference(AUTHORS_ONNX).run(noisy)[0]


def test_shipped_port_streams_what_the_authors_model_computes(noisy, authors):
    d = Denoiser(REPO / "models" / "gtcrn-dns3.onnx")
    assert (d.hop, d.latency_samples) == (256, 511)
    for chunk in (160, 1000):
        s = d.stream(16000)
        ours = np.concatenate([s.process(noisy[i:i + chunk]) for i in range(0, len(noisy), chunk)])
        ours = ours[d.latency_samples:]
        n = len(ours) - 256
        assert np.abs(authors[256:256 + n]).max() > 0.05  # a real output, not silence
        np.testing.assert_allclose(ours[:n], authors[256:256 + n], atol=1e-4)


def test_the_pytorch_port_computes_what_the_authors_model_computes(noisy, authors):
    torch = pytest.importorskip("torch")
    from streamae.train.config import GTCRNConfig
    from streamae.train.gtcrn import GTCRNet

    saved = torch.load(SHIPPED_PT, map_location="cpu", weights_only=False)
    net = GTCRNet(GTCRNConfig.from_dict(saved["config"])).eval()
    net.load_state_dict(saved["model"])
    with torch.no_grad():
        ours = net(torch.from_numpy(noisy)[None])[0].numpy()  # time-aligned
    np.testing.assert_allclose(ours[:-256], authors[256:], atol=1e-4)


def test_erb_filterbank_reproduces_the_published_one():
    torch = pytest.importorskip("torch")
    from streamae.train.config import GTCRNConfig
    from streamae.train.gtcrn import erb_filterbank

    saved = torch.load(SHIPPED_PT, map_location="cpu", weights_only=False)["model"]
    bank = erb_filterbank(GTCRNConfig())
    assert bank.shape == (64, 192)
    np.testing.assert_allclose(bank.numpy(), saved["erb_split"].numpy(), atol=1e-6)
    assert np.allclose(bank.sum(0).numpy(), 1.0, atol=1e-5)  # the bands partition the merged bins


@pytest.mark.parametrize("window,hop,dilations", [(512, 256, (1, 2, 5)), (160, 80, (3, 6, 15))])
def test_gtcrn_steps_in_chunks_equal_the_whole_signal(window, hop, dilations):
    """Any chunking of whole hops gives the whole-signal output, at the published frame and at
    the live frame (asymmetric analysis window)."""
    torch = pytest.importorskip("torch")
    from streamae.train.config import GTCRNConfig
    from streamae.train.gtcrn import GTCRNet

    torch.manual_seed(0)
    net = GTCRNet(GTCRNConfig(window=window, hop=hop, dilations=dilations)).eval()
    n = 16000 // hop * hop
    x = torch.from_numpy(speechlike(1.0, seed=5)[:n] + noise(1.0)[:n])[None]
    with torch.no_grad():
        whole = net(x)
        states, outs, start = net.initial_states(1), [], 0
        for frames in (1, 3, 2, 7, 1000):
            chunk = x[:, start:start + frames * hop]
            if chunk.shape[-1] == 0:
                break
            y, states, _ = net.step(chunk, states)
            outs.append(y)
            start += chunk.shape[-1]
        streamed = torch.cat(outs + [states[-1][:, 0]], dim=-1)[:, net.overlap:]
    assert net.overlap == window - hop
    torch.testing.assert_close(streamed, whole, atol=1e-5, rtol=0)


def test_gtcrn_frames_reconstruct_perfectly_with_a_unit_mask():
    """The STFT pair passes audio through exactly when the mask is 1 (real) everywhere: the
    asymmetric live frame as much as the published one."""
    torch = pytest.importorskip("torch")
    from streamae.train.config import GTCRNConfig
    from streamae.train.gtcrn import GTCRNet

    for window, hop in ((512, 256), (160, 80)):
        net = GTCRNet(GTCRNConfig(window=window, hop=hop))
        x = torch.from_numpy(noise(0.5, seed=6))[None, : 8000 // hop * hop]
        frames = torch.nn.functional.conv1d(torch.nn.functional.pad(x[:, None], (net.history, 0)),
                                            net.analysis_basis, stride=hop)
        y = torch.nn.functional.conv_transpose1d(frames, net.synthesis_basis, stride=hop)[0, 0]
        # output sample i is input sample i - overlap; the first frames' overlap is incomplete
        n, lag = x.shape[-1], net.overlap
        torch.testing.assert_close(y[window:n], x[0, window - lag:n - lag], atol=1e-5, rtol=0)


def test_exported_live_frame_gtcrn_streams_what_pytorch_computes(tmp_path):
    """The step graph export at v2's 10 ms frame (asymmetric analysis window, hop 80): streamed
    by the runtime in odd chunks, it equals the PyTorch model on the whole signal."""
    torch = pytest.importorskip("torch")
    from streamae.train.config import GTCRNConfig
    from streamae.train.export import export_denoiser
    from streamae.train.gtcrn import GTCRNet

    saved = torch.load(SHIPPED_PT, map_location="cpu", weights_only=False)["model"]
    net = GTCRNet(GTCRNConfig(window=160, hop=80, dilations=(3, 6, 15))).eval()
    fresh = net.state_dict()
    net.load_state_dict({**saved, **{k: fresh[k] for k in ("analysis_basis", "synthesis_basis")}})
    export_denoiser(net, tmp_path / "live.onnx", {"parameters": 0})
    x = (speechlike(2.0, seed=7) + noise(2.0, seed=8)).astype(np.float32)
    followed_by_silence = np.concatenate([x, np.zeros(160, np.float32)])  # as the stream's flush()
    with torch.no_grad():
        whole = net(torch.from_numpy(followed_by_silence)[None])[0].numpy()[: len(x)]
    d = Denoiser(tmp_path / "live.onnx")
    assert d.latency_samples == 159
    s = d.stream(16000)
    streamed = np.concatenate([s.process(x[i:i + 333]) for i in range(0, len(x), 333)] + [s.flush()])
    assert np.abs(whole).max() > 0.05
    np.testing.assert_allclose(streamed[d.latency_samples:], whole, atol=1e-4)
