"""The tiny models the tests run, and how they are made.

The runtime tests need no torch: they run the fixtures in tests/fixtures/, which this module made
(`cd tests && python -m support.models`, with the `train` extra installed) by the same recipes the
training tests run live:

- tiny.onnx + tiny.step.onnx: a denoiser trained through `streamae train denoiser` for 4 steps on
  synthetic speech and noise (learned front end, code 32, bottleneck 16, hidden 16, dilations
  1 2 4), its near-zero layers then given seeded random weights (`wake_and_export`);
- tiny-anomaly.onnx: an anomaly model trained through `streamae anomaly train` for 150 steps on
  synthetic machine sound, calibrated on held-out clips of it (`make_machine_data`).

tests/test_training.py and tests/test_anomaly_training.py check that the recipes still make
models of the fixtures' shape.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from .signals import RATE, machine, noise, speechlike

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TINY_DENOISER = FIXTURES / "tiny.onnx"
TINY_ANOMALY = FIXTURES / "tiny-anomaly.onnx"
TINY_SHAPE = ("--code", "32", "--bottleneck", "16", "--hidden", "16")  # the tiny denoiser's widths


# -- denoiser -------------------------------------------------------------------------------
def make_speech_data(root: Path) -> Path:
    """root/speech and root/noise: three 3 s synthetic files each."""
    (root / "speech").mkdir(parents=True, exist_ok=True)
    (root / "noise").mkdir(exist_ok=True)
    for i in range(3):
        sf.write(root / "speech" / f"s{i}.wav", speechlike(3.0, seed=i), RATE)
        sf.write(root / "noise" / f"n{i}.flac", noise(3.0, seed=10 + i), RATE)
    return root


def train_tiny(data: Path, run_dir: Path, *extra: str) -> int:
    """`streamae train denoiser` on the synthetic corpus under `data`, small and fast."""
    from streamae.cli import main

    return main(["train", "denoiser", "--speech", str(data / "speech"), "--noise", str(data / "noise"),
                 "--run-dir", str(run_dir), "--batch", "2", "--seconds", "1", "--threads", "2", *extra])


def make_tiny_denoiser(root: Path) -> Path:
    """The tiny denoiser's recipe: synthetic data and run folder under `root`, root/tiny.onnx."""
    import torch

    from streamae import Denoiser
    from streamae.train.config import DenoiserConfig
    from streamae.train.model import DenoiserNet

    make_speech_data(root)
    path = root / "tiny.onnx"
    code = train_tiny(root, root / "run", "--steps", "4", *TINY_SHAPE, "--dilations", "1", "2", "4",
                      "--log-every", "2", "--export", str(path))
    assert code == 0 and path.exists()
    ckpt = torch.load(root / "run" / "checkpoint.pt", map_location="cpu", weights_only=False)
    net = DenoiserNet(DenoiserConfig.from_dict(ckpt["config"]))
    net.load_state_dict(ckpt["model"])
    wake_and_export(net, path, Denoiser(path).info["training"])
    return path


def wake_and_export(net, path: Path, training: dict) -> None:
    """The blocks' output projections, the mask layer and the deep filter start at zero by design and
    are still ~1e-5 after a few steps, so the mask network's states would hardly touch the output and
    no test could see a bug in them. Seeded random weights there, exported to `path`; the weights go
    to `path`.pt for comparisons with torch."""
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


# -- anomaly --------------------------------------------------------------------------------
def make_machine_data(root: Path) -> Path:
    """root/{train,val,test_normal,test_anomalous}: 8 s clips of the synthetic machine."""
    for name, n, seed0, bad in (
        ("train", 5, 0, False),
        ("val", 3, 100, False),
        ("test_normal", 3, 200, False),
        ("test_anomalous", 3, 300, True),
    ):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            sf.write(root / name / f"{name}_{i}.wav", machine(8.0, seed0 + i, bad), RATE, subtype="PCM_16")
    return root


def make_tiny_anomaly(data: Path, path: Path) -> Path:
    """The tiny anomaly model's recipe: trained on data/train for 150 steps, however long they take
    on a busy machine (run folder data/run), calibrated on data/val, written to `path` (and its
    card beside it)."""
    from streamae.cli import main

    code = main(["anomaly", "train", "--normal", str(data / "train"), "--val-normal", str(data / "val"),
                 "-o", str(path), "--run-dir", str(data / "run"), "--steps", "150", "--minutes", "0",
                 "--batch", "16", "--hidden", "32", "--code", "8", "--threads", "2", "--log-seconds", "1"])
    assert code == 0 and path.exists()
    return path


def main() -> None:
    """Remake the fixtures in tests/fixtures/ (needs torch)."""
    import shutil
    import tempfile

    FIXTURES.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        denoiser = make_tiny_denoiser(Path(tmp) / "denoiser")
        for suffix in (".onnx", ".step.onnx"):
            shutil.copyfile(denoiser.with_name("tiny" + suffix), FIXTURES / ("tiny" + suffix))
        data = make_machine_data(Path(tmp) / "machine")
        shutil.copyfile(make_tiny_anomaly(data, data / "tiny-anomaly.onnx"), TINY_ANOMALY)
    print(f"wrote {TINY_DENOISER}, {TINY_DENOISER.with_name('tiny.step.onnx')} and {TINY_ANOMALY}")


if __name__ == "__main__":
    main()
