"""Where does a denoiser lose: noise left in the speech pauses, or error while speech is active?

On the dev mix, per input SNR: how far each system brings the noise down in 20 ms frames where
the clean speech is silent (more than 30 dB below its loudest frame), and its signal-to-error
ratio in the frames where speech is active (the error being what is left after the best scaling
of the clean speech). A model that gates well but smears speech loses on the second; one that
leaks noise between words, on the first.

    python scripts/error_split.py models/denoiser-v1.onnx
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench_denoise import DTLN, Streamae, measure_lag  # noqa: E402
from streamae.evaluation import make_test_mix  # noqa: E402

FRAME = 320  # 20 ms at 16 kHz
SILENT_DB = -30.0


def split_scores(y: np.ndarray, clean: np.ndarray, noise: np.ndarray) -> tuple[float, float]:
    """-> (noise attenuation in pauses dB, signal-to-error ratio in speech frames dB)."""
    n = len(clean) // FRAME * FRAME
    frames = lambda v: v[:n].reshape(-1, FRAME)
    energy = (frames(clean) ** 2).mean(1)
    active = energy > 10 ** (SILENT_DB / 10) * energy.max()
    scale = np.dot(y, clean) / np.dot(clean, clean)
    error = frames(y - scale * clean)
    pauses = 10 * np.log10((frames(noise)[~active] ** 2).sum() / (frames(y)[~active] ** 2).sum())
    speech = 10 * np.log10(((scale * frames(clean)[active]) ** 2).sum() / (error[active] ** 2).sum())
    return float(pauses), float(speech)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+")
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--dtln", default="../shared/anchors/dtln")
    args = p.parse_args()
    systems = [DTLN(Path(args.dtln))] + [Streamae(Path(m).stem, Path(m)) for m in args.models]
    mixes = make_test_mix(Path(args.data) / "speech" / "dev", Path(args.data) / "noise" / "dev")
    scores: dict[float, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for m in mixes:
        for s in systems:
            y, _ = s.run(m.noisy)
            lag = measure_lag(y, m.clean)
            aligned = np.pad(y[lag:], (0, max(0, len(m.clean) - len(y) + lag)))[: len(m.clean)]
            scores[m.snr_db][s.name].append(split_scores(aligned, m.clean, m.noisy - m.clean))
    names = " / ".join(s.name for s in systems)
    print(f"| input SNR | noise attenuation in pauses, dB ({names}) | SER in speech frames, dB ({names}) |")
    print("|---|---|---|")
    for snr in sorted(scores):
        means = [np.mean(scores[snr][s.name], axis=0) for s in systems]
        print(f"| {snr:+.0f} | " + " / ".join(f"{m[0]:.1f}" for m in means) + " | "
              + " / ".join(f"{m[1]:.1f}" for m in means) + " |")


if __name__ == "__main__":
    main()
