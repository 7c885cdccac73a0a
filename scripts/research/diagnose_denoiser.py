"""Why a denoiser trails DTLN: two diagnostics, each system side by side with DTLN.

1. Fit gap. SI-SDR improvement on mixtures of *training* audio (every 5th file of speech/train,
   first 50, with noise/train, mixed exactly as the dev mix is: same SNRs, levels and seed) and
   on the dev mix. A model that memorised its training audio does much better on the first; one
   that underfits trails DTLN (which saw neither) on both.
2. Error split, on the dev mix by input SNR. How far the noise is brought down in 20 ms frames
   where the clean speech is silent (more than 30 dB below its loudest frame), and the
   signal-to-error ratio in the frames where speech is active (error: what is left after the
   best scaling of the clean speech). A model that smears speech loses on the second; one that
   leaks noise between words, on the first.
3. STOI per band, on the dev mix at -5, 0 and 5 dB input (`streamae.train.losses.band_correlations`,
   which follows pystoi): which of STOI's one-third-octave bands lose the speech envelope. Needs
   torch; `--rnnoise` adds RNNoise, which leads on STOI at low SNR.

    python -m scripts.research.diagnose_denoiser models/denoiser-v1.onnx [MORE.onnx ...] [--rnnoise]
"""
from __future__ import annotations

import argparse
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from scripts.bench.bench_denoise import DTLN, RNNoise, Streamae, aligned_output
from streamae.audio import audio_files
from streamae.evaluation import Mixture, make_test_mix, si_sdr

FRAME = 320  # 20 ms at 16 kHz
SILENT_DB = -30.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+")
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--dtln", default="../shared/anchors/dtln")
    p.add_argument("--rnnoise", action="store_true", help="add RNNoise (pyrnnoise, the bench extra)")
    args = p.parse_args()
    data = Path(args.data)
    anchors = [DTLN(Path(args.dtln))] + ([RNNoise()] if args.rnnoise else [])
    systems = anchors + [Streamae(Path(m).stem, m) for m in args.models]
    dev = make_test_mix(data / "speech" / "dev", data / "noise" / "dev")
    dev_outputs = {s.name: [aligned_output(s, m)[0] for m in dev] for s in systems}
    names = " / ".join(s.name for s in systems)

    with tempfile.TemporaryDirectory() as tmp:
        for i, path in enumerate(audio_files([data / "speech" / "train"])[4::5][:50]):
            (Path(tmp) / f"{i:02d}-{path.name}").symlink_to(path.resolve())
        train = make_test_mix(tmp, data / "noise" / "train")
        train_outputs = {s.name: [aligned_output(s, m)[0] for m in train] for s in systems}
    print(f"Fit gap: mean SI-SDR improvement, dB ({names})")
    for label, mixes, outputs in [("training audio", train, train_outputs), ("dev mix", dev, dev_outputs)]:
        print(f"  {label} ({len(mixes)} mixtures): "
              + " / ".join(f"{improvement(outputs[s.name], mixes):+.2f}" for s in systems))

    print(f"\nError split on the dev mix ({names})")
    print("| input SNR | noise attenuation in pauses, dB | SER in speech frames, dB |\n|---|---|---|")
    by_snr: dict[float, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for i, m in enumerate(dev):
        for s in systems:
            by_snr[m.snr_db][s.name].append(error_split(dev_outputs[s.name][i], m.clean, m.noisy - m.clean))
    for snr in sorted(by_snr):
        means = [np.mean(by_snr[snr][s.name], axis=0) for s in systems]
        print(f"| {snr:+.0f} | " + " / ".join(f"{x[0]:.1f}" for x in means) + " | "
              + " / ".join(f"{x[1]:.1f}" for x in means) + " |")

    print("\nSTOI per one-third-octave band on the dev mix (band centre, Hz)")
    print_band_stoi(systems, dev, dev_outputs)


def print_band_stoi(systems: list, mixes: list[Mixture], outputs: dict[str, list[np.ndarray]]) -> None:
    import torch

    from streamae.train.losses import band_correlations

    print("| input SNR | system | " + " | ".join(f"{150 * 2 ** (k / 3):.0f}" for k in range(15)) + " |")
    print("|---|---|" + "---|" * 15)
    for snr in (-5.0, 0.0, 5.0):
        for s in systems:
            rows = []
            for y, m in zip(outputs[s.name], mixes):
                if m.snr_db == snr:
                    n = min(len(y), len(m.clean))
                    rows.append(band_correlations(torch.from_numpy(y[None, :n].astype(np.float32)),
                                                  torch.from_numpy(m.clean[None, :n]))[0].numpy())
            print(
                f"| {snr:+.0f} | {s.name} | " + " | ".join(f"{v:.2f}" for v in np.mean(rows, axis=0)) + " |"
            )


def improvement(outputs: list[np.ndarray], mixes: list[Mixture]) -> float:
    """Mean SI-SDR gain over the noisy input."""
    return float(np.mean([si_sdr(y, m.clean) - si_sdr(m.noisy, m.clean) for y, m in zip(outputs, mixes)]))


def error_split(y: np.ndarray, clean: np.ndarray, noise: np.ndarray) -> tuple[float, float]:
    """-> (noise attenuation in speech pauses dB, signal-to-error ratio in speech frames dB)."""
    n = len(clean) // FRAME * FRAME
    def frames(v):
        return v[:n].reshape(-1, FRAME)
    energy = (frames(clean) ** 2).mean(1)
    active = energy > 10 ** (SILENT_DB / 10) * energy.max()
    scale = np.dot(y, clean) / np.dot(clean, clean)
    error = frames(y - scale * clean)
    pauses = 10 * np.log10((frames(noise)[~active] ** 2).sum() / (frames(y)[~active] ** 2).sum())
    speech = 10 * np.log10(((scale * frames(clean)[active]) ** 2).sum() / (error[active] ** 2).sum())
    return float(pauses), float(speech)


if __name__ == "__main__":
    main()
