"""Shared fixtures: synthetic audio and one tiny model trained and exported for the session.

Nothing here reads ../shared: the tests make their own signals or use files in examples/.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "models" / "denoiser-v2.onnx"


def speechlike(seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """Harmonic voiced segments with a moving pitch and syllable-rate envelope, and pauses."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 20) if k * 180 < rate / 2)
    envelope = np.clip(np.sin(2 * np.pi * 3.0 * t + rng.uniform(0, 6)), 0, None) ** 2
    envelope *= (np.sin(2 * np.pi * 0.4 * t) > -0.5)
    return (0.1 * voice * envelope).astype(np.float32)


def noise(seconds: float, rate: int = 16000, seed: int = 1, level: float = 0.03) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (level * rng.standard_normal(int(seconds * rate))).astype(np.float32)


def load_script(name: str):
    """A module of scripts/, imported by path (scripts/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_tiny(data: Path, run_dir: Path, *extra: str) -> int:
    """`streamae train denoiser` on the synthetic corpus under `data`, small and fast."""
    from streamae.cli import main

    return main(["train", "denoiser", "--speech", str(data / "speech"), "--noise", str(data / "noise"),
                 "--run-dir", str(run_dir), "--batch", "2", "--seconds", "1", "--threads", "2", *extra])


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """Train a tiny denoiser for a few steps through the CLI, export it, return the .onnx path."""
    root = tmp_path_factory.mktemp("tiny")
    (root / "speech").mkdir()
    (root / "noise").mkdir()
    for i in range(3):
        sf.write(root / "speech" / f"s{i}.wav", speechlike(3.0, seed=i), 16000)
        sf.write(root / "noise" / f"n{i}.flac", noise(3.0, seed=10 + i), 16000)
    path = root / "tiny.onnx"
    code = train_tiny(root, root / "run", "--steps", "4", "--code", "32", "--bottleneck", "16", "--hidden", "16",
                      "--dilations", "1", "2", "4", "--log-every", "2", "--export", str(path))
    assert code == 0 and path.exists()
    import torch

    from streamae import Denoiser
    from streamae.train.config import DenoiserConfig
    from streamae.train.model import DenoiserNet

    ckpt = torch.load(root / "run" / "checkpoint.pt", map_location="cpu", weights_only=False)
    net = DenoiserNet(DenoiserConfig.from_dict(ckpt["config"]))
    net.load_state_dict(ckpt["model"])
    _wake_and_export(net, path, Denoiser(path).info["training"])
    return path


@pytest.fixture(scope="session")
def tiny_spectral_model(tmp_path_factory) -> Path:
    """An untrained tiny model with the spectral front end (a 200-sample asymmetric STFT: not a
    whole number of 80-sample hops, as 512 is not), seeded and exported; its weights go to `path`.pt."""
    from streamae.train.config import DenoiserConfig
    from streamae.train.model import DenoiserNet

    path = tmp_path_factory.mktemp("tiny-spectral") / "tiny.onnx"
    net = DenoiserNet(DenoiserConfig(analysis_window=200, bottleneck=16, hidden=16, dilations=(1, 2, 4)))
    _wake_and_export(net, path, {"steps": 0})
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
    _wake_and_export(net, path, {"steps": 0})
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
    _wake_and_export(net, path, {"steps": 0})
    return path


def _wake_and_export(net, path: Path, training: dict) -> None:
    """The blocks' output projections, the mask layer and the deep filter start at zero by design and are still
    ~1e-5 after a few steps, so the mask network's states would hardly touch the output and no
    test could see a bug in them. Seeded random weights there, exported to `path`; the weights
    go to `path`.pt for comparisons with torch."""
    import torch

    from streamae.train.train_denoiser import export

    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            if p.abs().max() < 1e-3:
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
    torch.save({"config": net.config.to_dict(), "model": net.state_dict()}, path.with_suffix(".pt"))
    probe = torch.from_numpy(np.stack([speechlike(1.0, seed=s) + noise(1.0, seed=s) for s in range(2)]))
    export(net, probe, path, training)


@pytest.fixture(scope="session")
def shipped_model() -> Path:
    if not SHIPPED.exists():
        pytest.fail(f"the shipped model {SHIPPED} is missing")
    return SHIPPED
