"""Underfitting or overfitting? SI-SDR improvement on mixtures of *training* audio and on the dev
mix, for streamae models and DTLN side by side.

A model that only memorised its training audio would do much better on the first than on the
second; DTLN, which saw neither, shows how much of any difference is the audio itself. The
training mix takes every 5th file of speech/train (first 50) with noise/train, mixed exactly as
the dev mix is (same SNRs, levels and seed).

    python scripts/fit_gap.py models/denoiser-v1.onnx [MORE.onnx ...]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench_denoise import DTLN, Streamae, measure_lag  # noqa: E402
from streamae.audio import audio_files  # noqa: E402
from streamae.evaluation import make_test_mix, si_sdr  # noqa: E402


def improvement(system, mixes) -> float:
    """Mean SI-SDR gain over the noisy input, after lag alignment."""
    gains = []
    for m in mixes:
        y, _ = system.run(m.noisy)
        lag = measure_lag(y, m.clean)
        aligned = np.pad(y[lag:], (0, max(0, len(m.clean) - len(y) + lag)))[: len(m.clean)]
        gains.append(si_sdr(aligned, m.clean) - si_sdr(m.noisy, m.clean))
    return float(np.mean(gains))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+")
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--dtln", default="../shared/anchors/dtln")
    args = p.parse_args()
    data = Path(args.data)
    systems = [DTLN(Path(args.dtln))] + [Streamae(Path(m).stem, Path(m)) for m in args.models]
    with tempfile.TemporaryDirectory() as tmp:
        for i, path in enumerate(audio_files([data / "speech" / "train"])[4::5][:50]):
            (Path(tmp) / f"{i:02d}-{path.name}").symlink_to(path.resolve())
        sets = {"training audio": make_test_mix(tmp, data / "noise" / "train"),
                "dev mix": make_test_mix(data / "speech" / "dev", data / "noise" / "dev")}
        print("SI-SDR improvement, dB: " + " | ".join(s.name for s in systems))
        for label, mixes in sets.items():
            print(f"{label} ({len(mixes)} mixtures): " + " | ".join(f"{improvement(s, mixes):+.2f}" for s in systems),
                  flush=True)


if __name__ == "__main__":
    main()
