"""The checks a candidate denoiser must pass beside the dev mix, so a gain tuned on dev is not paid
for elsewhere. Every model named is measured in the same run:

    python scripts/bench/outside_checks.py models/denoiser-v2.onnx runs/candidate.onnx \
        --pairs ../shared/data/paired/vctk-p287

- example: examples/noisy_speech.flac (real noise at 5 dB), SI-SDR gain over the input, and PESQ-WB;
- white: the example's clean speech under seeded white noise at 5 dB SNR, SI-SDR gain; with
  --white-speech DIR also the mean (and worst) gain over every file there, since one clip can
  overstate a change several times over;
- clean: the example's clean speech alone, SI-SDR of the output against it (how transparently
  speech with no noise passes; with --white-speech DIR also over those files), since a model
  trained on noisy input only may still eat into clean input;
- pairs: real noisy/clean recordings, PESQ-WB / STOI / SI-SDR, and per utterance how much of the
  clean speech's 2-4 and 4-8 kHz energy survives (dB, over the louder half of the clean frames):
  a model that removes consonants with the noise shows it there first.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from streamae import Denoiser
from streamae.audio import SAMPLE_RATE as RATE
from streamae.audio import audio_files, read_first_channel
from streamae.evaluation import load_pairs, quality_scores, si_sdr

ROOT = Path(__file__).resolve().parents[2]

BANDS_HZ = ((2000, 4000), (4000, 8000))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+")
    p.add_argument(
        "--pairs", default=None, help="a folder with noisy/ and clean/ recordings of the same utterances"
    )
    p.add_argument(
        "--white-speech", default=None, help="clean speech files or a folder for the white-noise check too"
    )
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args()
    clean = read_first_channel(ROOT / "examples" / "clean_speech.flac", RATE)
    noisy = read_first_channel(ROOT / "examples" / "noisy_speech.flac", RATE)
    white = add_white_noise(clean, snr_db=5.0)
    pairs = load_pairs(args.pairs) if args.pairs else []
    many_white = []  # (noisy, clean) per file, each with its own seeded noise
    for i, path in enumerate(audio_files([args.white_speech]) if args.white_speech else []):
        speech = read_first_channel(path, RATE)
        many_white.append((add_white_noise(speech, snr_db=5.0, seed=i), speech))
    results = {}
    for model in args.models:
        d = Denoiser(model, threads=1)
        example = d.process(noisy, RATE)
        r = {"example_si_sdr_gain_db": gain(example, noisy, clean),
             "example_pesq_wb": quality_scores(example, clean)["pesq_wb"],
             "white_5db_si_sdr_gain_db": gain(d.process(white, RATE), white, clean),
             "clean_si_sdr_db": passed_clean(d, clean)}
        if many_white:
            r["white_5db_many"] = mean_and_worst([gain(d.process(x, RATE), x, c) for x, c in many_white])
            r["clean_many"] = mean_and_worst([passed_clean(d, c) for _, c in many_white])
        if pairs:
            r["pairs"] = pair_scores(d, pairs)
        results[model] = r
        print(summary(model, r), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


def summary(model: str, r: dict) -> str:
    line = (f"{model}: example {r['example_si_sdr_gain_db']:+.2f} dB (PESQ-WB {r['example_pesq_wb']:.2f}), "
            f"white 5 dB {r['white_5db_si_sdr_gain_db']:+.2f} dB")
    if "white_5db_many" in r:
        w = r["white_5db_many"]
        line += f" ({w['files']} files: {w['mean_db']:+.2f}, worst {w['worst_db']:+.2f})"
    line += f", clean in {r['clean_si_sdr_db']:.1f} dB"
    if "clean_many" in r:
        c = r["clean_many"]
        line += f" ({c['files']} files: {c['mean_db']:.1f}, worst {c['worst_db']:.1f})"
    if "pairs" in r:
        m = r["pairs"]["mean"]
        worst = min(r["pairs"]["per_utterance"].items(), key=lambda kv: kv[1]["kept_4_8khz_db"])
        line += (f", pairs {m['pesq_wb']:.3f} / {m['stoi']:.3f} / {m['si_sdr']:.2f} dB, 4-8 kHz kept "
                 f"{m['kept_4_8khz_db']:+.2f} dB (worst {worst[0]} {worst[1]['kept_4_8khz_db']:+.2f})")
    return line


def add_white_noise(clean: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(len(clean))
    noise *= np.sqrt(np.mean(clean ** 2) / np.mean(noise ** 2)) * 10 ** (-snr_db / 20)
    return (clean + noise).astype(np.float32)


def mean_and_worst(values: list[float]) -> dict:
    return {"files": len(values), "mean_db": round(float(np.mean(values)), 2), "worst_db": min(values)}


def passed_clean(d: Denoiser, speech: np.ndarray) -> float:
    """SI-SDR of the output against its input when the input is clean speech alone, dB."""
    return round(si_sdr(d.process(speech, RATE), speech), 2)


def gain(cleaned: np.ndarray, noisy: np.ndarray, clean: np.ndarray) -> float:
    """SI-SDR improvement over the input, dB."""
    return round(si_sdr(cleaned, clean) - si_sdr(noisy, clean), 2)


def pair_scores(d: Denoiser, pairs) -> dict:
    per = {}
    for m in pairs:
        out = d.process(m.noisy, RATE)
        scores = quality_scores(out, m.clean)
        scores.update(
            {
                f"kept_{lo // 1000}_{hi // 1000}khz_db": v
                for (lo, hi), v in zip(BANDS_HZ, band_kept(out, m.clean))
            }
        )
        per[m.name] = {k: round(v, 3) for k, v in scores.items()}
    mean = {k: round(float(np.mean([s[k] for s in per.values()])), 3) for k in next(iter(per.values()))}
    return {"mean": mean, "per_utterance": per}


def band_kept(out: np.ndarray, clean: np.ndarray, n_fft: int = 512) -> list[float]:
    """Output energy against the clean speech's, per band, over the frames where the clean speech
    is in its louder half (so pauses, where removing everything is right, do not count)."""
    spec_out, spec_clean = _power(out, n_fft), _power(clean, n_fft)
    frames = spec_clean.sum(axis=1) >= np.median(spec_clean.sum(axis=1))
    freqs = np.fft.rfftfreq(n_fft, 1 / RATE)
    kept = []
    for lo, hi in BANDS_HZ:
        band = (freqs >= lo) & (freqs < hi)
        kept.append(
            float(
                10
                * np.log10(
                    spec_out[frames][:, band].sum() / (spec_clean[frames][:, band].sum() + 1e-20) + 1e-20
                )
            )
        )
    return kept


def _power(x: np.ndarray, n_fft: int) -> np.ndarray:
    frames = np.lib.stride_tricks.sliding_window_view(np.asarray(x, np.float64), n_fft)[:: n_fft // 2]
    frames = frames * np.hanning(n_fft)
    return np.abs(np.fft.rfft(frames, axis=1)) ** 2


if __name__ == "__main__":
    main()
