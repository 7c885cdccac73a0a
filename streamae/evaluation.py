"""Scoring and seeded test mixtures, shared by the model card, benchmarks and tests.

numpy only; PESQ and STOI come from the optional `bench` extra (pesq, pystoi).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE, audio_files, read_first_channel

SNRS_DB = (-5.0, 0.0, 5.0, 10.0, 15.0)


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant SDR in dB (Le Roux et al. 2019)."""
    ref = reference - reference.mean()
    est = estimate - estimate.mean()
    target = ref * (np.dot(est, ref) / (np.dot(ref, ref) + 1e-12))
    return float(
        10 * np.log10((np.dot(target, target) + 1e-12) / (np.dot(est - target, est - target) + 1e-12))
    )


def quality_scores(estimate: np.ndarray, reference: np.ndarray, rate: int = SAMPLE_RATE) -> dict[str, float]:
    """PESQ-WB, STOI and SI-SDR of a 16 kHz estimate against its clean reference."""
    try:
        from pesq import pesq
        from pystoi import stoi
    except ImportError as e:
        raise ImportError("scoring needs the bench extra: pip install -e '.[bench]'") from e
    n = min(len(estimate), len(reference))
    est, ref = estimate[:n].astype(np.float64), reference[:n].astype(np.float64)
    try:
        pesq_wb = float(pesq(rate, ref, est, "wb"))
    except Exception:  # pesq raises on silent or degenerate output: score it as the floor
        pesq_wb = 1.0
    return {
        "pesq_wb": pesq_wb,
        "stoi": float(stoi(ref, est, rate, extended=False)),
        "si_sdr": si_sdr(est, ref),
    }


@dataclass
class Mixture:
    name: str
    noisy: np.ndarray
    clean: np.ndarray
    snr_db: float
    noise: str = ""  # the noise recording's name, to see which noises a system fails on


def make_test_mix(speech_dir: str | Path, noise_dir: str | Path, seed: int = 2026, rate: int = SAMPLE_RATE,
                  snrs_db: tuple[float, ...] = SNRS_DB) -> list[Mixture]:
    """Every speech file once, each with a seeded noise file, offset, SNR (cycling through
    `snrs_db`) and mixture level (-35..-15 dBFS). Same inputs, same seed: same mixtures."""
    rng = np.random.default_rng(seed)
    speech = audio_files([speech_dir])
    noise_paths = audio_files([noise_dir])
    noises = [_mono(p, rate) for p in noise_paths]
    mixes = []
    for i, path in enumerate(speech):
        clean = _mono(path, rate)
        pick = rng.integers(len(noises))
        n = noises[pick]
        if len(n) < len(clean):
            n = np.tile(n, len(clean) // len(n) + 1)
        start = rng.integers(0, len(n) - len(clean) + 1)
        n = n[start:start + len(clean)]
        snr = snrs_db[i % len(snrs_db)]
        gain = np.sqrt(np.mean(clean ** 2) / (np.mean(n ** 2) + 1e-12)) * 10 ** (-snr / 20)
        noisy = clean + gain * n
        scale = 10 ** (rng.uniform(-35, -15) / 20) / np.sqrt(np.mean(noisy ** 2))
        scale = min(scale, 0.99 / np.abs(noisy).max())
        mixes.append(
            Mixture(
                path.stem,
                (noisy * scale).astype(np.float32),
                (clean * scale).astype(np.float32),
                snr,
                noise_paths[pick].stem,
            )
        )
    return mixes


def load_pairs(folder: str | Path, rate: int = SAMPLE_RATE) -> list[Mixture]:
    """Real noisy/clean recordings of the same utterance: `folder`/noisy/X beside `folder`/clean/X."""
    folder = Path(folder)
    noisy_paths = audio_files([folder / "noisy"])
    return [
        Mixture(
            p.stem,
            read_first_channel(p, rate),
            read_first_channel(folder / "clean" / p.name, rate),
            float("nan"),
        )
        for p in noisy_paths
    ]


def _mono(path: Path, rate: int) -> np.ndarray:
    return read_first_channel(path, rate).astype(np.float64)


def paired_interval(diff: np.ndarray, resamples: int = 10000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of per-mixture differences and its 95 % bootstrap interval (mixtures resampled)."""
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (resamples, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(low), float(high)


def format_interval(mean: float, low: float, high: float) -> str:
    """`+0.050 [+0.020, +0.080]*`: the star marks an interval that excludes zero."""
    mark = "*" if low > 0 or high < 0 else " "
    return f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]{mark}"
