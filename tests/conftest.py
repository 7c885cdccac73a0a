"""Shared fixtures: synthetic audio, the tiny fixture models, and tiny models trained for the session.

Nothing here reads ../shared: the tests make their own signals or use files in examples/. The
runtime tests run models shipped in tests/fixtures/ (made by tests/support/models.py) and need no
torch; the fixtures that train or export models live (`trained_tiny_model`, `tiny_*_model`) skip
their tests cleanly where torch is not installed.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from support.models import TINY_ANOMALY, TINY_DENOISER, make_tiny_denoiser, wake_and_export
from support.signals import noise, speechlike

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "models" / "denoiser-v2.onnx"

__all__ = ["REPO", "SHIPPED", "noise", "speechlike"]


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """The tiny denoiser fixture (tests/fixtures/tiny.onnx and its step graph): no torch needed."""
    return TINY_DENOISER


@pytest.fixture(scope="session")
def tiny_anomaly_model() -> Path:
    """The tiny anomaly model fixture (tests/fixtures/tiny-anomaly.onnx): no torch needed."""
    return TINY_ANOMALY


@pytest.fixture(scope="session")
def trained_tiny_model(tmp_path_factory) -> Path:
    """The tiny denoiser's recipe run for the session: trained for a few steps through the CLI,
    exported; its data and run folder lie beside it, its weights in `path`.pt."""
    pytest.importorskip("torch")
    return make_tiny_denoiser(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_spectral_model(tmp_path_factory) -> Path:
    """An untrained tiny model with the spectral front end (a 200-sample asymmetric STFT: not a
    whole number of 80-sample hops, as 512 is not), seeded and exported; its weights go to `path`.pt."""
    from streamae.train.config import DenoiserConfig
    from streamae.train.model import DenoiserNet

    path = tmp_path_factory.mktemp("tiny-spectral") / "tiny.onnx"
    net = DenoiserNet(DenoiserConfig(analysis_window=200, bottleneck=16, hidden=16, dilations=(1, 2, 4)))
    wake_and_export(net, path, {"steps": 0})
    return path


@pytest.fixture(scope="session")
def tiny_recurrent_model(tmp_path_factory) -> Path:
    """An untrained tiny model whose mask network is two GRU layers (learned front end), seeded
    and exported; its weights go to `path`.pt."""
    import torch

    from streamae.train.config import DenoiserConfig
    from streamae.train.model import DenoiserNet

    path = tmp_path_factory.mktemp("tiny-recurrent") / "tiny.onnx"
    torch.manual_seed(1)  # the GRU's initial weights
    net = DenoiserNet(DenoiserConfig(code=32, bottleneck=16, hidden=24, recurrent=2))
    wake_and_export(net, path, {"steps": 0})
    return path


@pytest.fixture(scope="session")
def tiny_deep_filter_model(tmp_path_factory) -> Path:
    """An untrained tiny model with the spectral front end, a GRU and a deep filter of 3 taps,
    seeded and exported; its weights go to `path`.pt."""
    return _tiny_phase_model(tmp_path_factory.mktemp("tiny-deep-filter") / "tiny.onnx", deep_filter=3)


@pytest.fixture(scope="session")
def tiny_phase_input_model(tmp_path_factory) -> Path:
    """The same with the phase input alone, no deep filter."""
    return _tiny_phase_model(tmp_path_factory.mktemp("tiny-phase-input") / "tiny.onnx", phase_input=True)


def _tiny_phase_model(path: Path, **shape) -> Path:
    import torch

    from streamae.train.config import DenoiserConfig
    from streamae.train.model import DenoiserNet

    torch.manual_seed(2)
    net = DenoiserNet(DenoiserConfig(analysis_window=200, bottleneck=16, hidden=16, recurrent=1, **shape))
    norm = net.features[1]  # statistics away from 0 and 1, so folding them into the step graph is tested
    norm.running_mean.uniform_(-1, 1)
    norm.running_var.uniform_(0.5, 2)
    wake_and_export(net, path, {"steps": 0})
    return path


@pytest.fixture(scope="session")
def shipped_model() -> Path:
    if not SHIPPED.exists():
        pytest.fail(f"the shipped model {SHIPPED} is missing")
    return SHIPPED
