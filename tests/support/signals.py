"""Synthetic test audio: speech-like and noise for the denoiser, a machine hum (with a fault) for
the anomaly monitor. numpy only; seeded, so every run makes the same samples."""
from __future__ import annotations

from pathlib import Path

import numpy as np

RATE = 16000


def speechlike(seconds: float, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """Harmonic voiced segments with a moving pitch and syllable-rate envelope, and pauses."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 20) if k * 180 < rate / 2)
    envelope = np.clip(np.sin(2 * np.pi * 3.0 * t + rng.uniform(0, 6)), 0, None) ** 2
    envelope *= (np.sin(2 * np.pi * 0.4 * t) > -0.5)
    return (0.1 * voice * envelope).astype(np.float32)


def noise(seconds: float, rate: int = RATE, seed: int = 1, level: float = 0.03) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (level * rng.standard_normal(int(seconds * rate))).astype(np.float32)


def machine(seconds: float, seed: int, anomalous: bool = False, rate: int = RATE) -> np.ndarray:
    """A wobbling harmonic hum with a noisy resonance; anomalous: the same machine with a
    bearing-like click train and a new whine added (`fault`)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 90 * (1 + rng.uniform(-0.03, 0.03)) * (1 + 0.01 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    x = sum(np.sin(k * phase + rng.uniform(0, 6)) / k ** 0.8 for k in range(1, 40))
    ring = np.exp(-np.arange(64) / 16) * np.cos(2 * np.pi * 1200 / rate * np.arange(64))
    resonance = np.convolve(rng.standard_normal(len(t)), ring, "same")
    x = x / np.std(x) + 0.3 * resonance / np.std(resonance) + 0.05 * rng.standard_normal(len(t))
    if anomalous:
        x += fault(len(t), rate, rng) * np.std(x)
    return (0.05 * x / np.std(x)).astype(np.float32)


def fault(n: int, rate: int, rng) -> np.ndarray:
    t = np.arange(n) / rate
    clicks = np.zeros(n)
    k = np.arange(int(0.02 * rate)) / rate
    click = np.exp(-k / 0.002) * np.sin(2 * np.pi * 3500 * k)
    for i in range(0, n - len(click), int(rate / 23)):
        clicks[i:i + len(click)] += click
    tone = np.sin(2 * np.pi * 2600 * t)
    return 0.6 * clicks / np.std(clicks) + 0.2 * tone


def write_noisy_speech(path: Path, seconds: float, rate: int, channels: int = 1, subtype: str = "PCM_16",
                       seed: int = 0) -> None:
    """A noisy speech-like file, each channel its own signal (folders made as needed)."""
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.stack(
        [speechlike(seconds, rate, seed + c) + noise(seconds, rate, seed + c) for c in range(channels)], 1
    )
    sf.write(path, x, rate, subtype=subtype)


def relative_files(root: Path) -> list[str]:
    """Every file under `root`, as sorted paths relative to it."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def write_mixed_tree(src: Path) -> Path:
    """A nested folder of noisy speech at mixed rates, channels and formats, and one non-audio file."""
    write_noisy_speech(src / "a.wav", 0.7, 16000)
    write_noisy_speech(src / "b.flac", 0.5, 44100, channels=2, subtype="PCM_24", seed=1)
    write_noisy_speech(src / "calls" / "c.ogg", 0.6, 48000, subtype="VORBIS", seed=2)
    write_noisy_speech(src / "calls" / "old" / "d.wav", 0.4, 8000, subtype="FLOAT", seed=3)
    (src / "notes.txt").write_text("not audio")
    return src
