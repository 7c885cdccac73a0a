"""On-the-fly training mixtures, built on the training device in whole batches.

Clean speech and real noise are loaded once into device memory; every batch draws random
crops and applies, in vectorised torch: EQ, reverberation (real and simulated rooms, with
an early-reflection target), speech gaps, a second noise, synthetic noises (coloured noise,
mains hum, tonal whine, clicks), random SNR and random level. Nothing is precomputed, so
the model never sees the same mixture twice.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..audio import SAMPLE_RATE, audio_files, read_first_channel
from ..errors import StreamaeError


def load_corpus(paths: list[str | Path], sample_rate: int, min_seconds: float = 0.0) -> list[np.ndarray]:
    """Every file as mono float32 at `sample_rate` (first channel of multichannel files)."""
    out = []
    for f in audio_files(paths):
        x = read_first_channel(f, sample_rate)
        if len(x) >= min_seconds * sample_rate:
            out.append(x)
    if not out:
        raise StreamaeError(f"no file of at least {min_seconds:g} s under {', '.join(map(str, paths))}")
    return out


class Bank:
    """Clips concatenated into one device tensor, cropped anywhere with one gather."""

    def __init__(self, clips: list[np.ndarray], device: torch.device, gap: int = 0):
        joined = np.concatenate([np.pad(c, (0, gap)) for c in clips])
        self.audio = torch.from_numpy(joined).to(device)
        self.samples = len(joined)

    def crop(self, batch: int, length: int, gen: torch.Generator) -> torch.Tensor:
        n = self.audio.shape[0]
        if n <= length:
            reps = length // n + 1
            src = self.audio.repeat(reps)
        else:
            src = self.audio
        start = torch.randint(0, src.shape[0] - length, (batch,), generator=gen, device=src.device)
        return src[start[:, None] + torch.arange(length, device=src.device)]


@dataclass
class MixConfig:
    sample_rate: int = SAMPLE_RATE
    seconds: float = 4.0
    snr_low: float = -5.0
    snr_high: float = 25.0
    level_low_db: float = -45.0  # mixture RMS, dBFS
    level_high_db: float = -5.0
    p_clean: float = 0.05  # no noise at all: the model must leave clean speech alone
    p_reverb: float = 0.35
    p_gap: float = 0.3
    p_second_noise: float = 0.3
    p_synthetic: float = 0.3
    early_ms: float = 50.0


class Mixer:
    def __init__(self, speech: list[np.ndarray], noise: list[np.ndarray], rirs: list[np.ndarray],
                 device: torch.device, config: MixConfig = MixConfig(), seed: int = 0):
        self.c = config
        self.device = device
        self.speech = Bank(speech, device, gap=config.sample_rate // 10)
        self.noise = Bank(noise, device)
        self.rirs = [self._align_rir(r) for r in rirs]
        self.gen = torch.Generator(device=device)
        self.gen.manual_seed(seed)

    def _align_rir(self, rir: np.ndarray) -> torch.Tensor:
        r = rir[int(np.argmax(np.abs(rir))):][: self.c.sample_rate]  # direct path at t=0, <=1 s
        return torch.from_numpy(r / (np.abs(r).max() + 1e-9)).float().to(self.device)

    def _rand(self, *shape) -> torch.Tensor:
        return torch.rand(*shape, generator=self.gen, device=self.device)

    def _uniform(self, low: float, high: float, n: int) -> torch.Tensor:
        return low + (high - low) * self._rand(n)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (noisy, clean target), each [size, samples]."""
        n = int(self.c.seconds * self.c.sample_rate)
        speech = self._random_eq(self.speech.crop(size, n, self.gen))
        speech, target = self._reverberate(speech)
        gaps = self._gap_mask(size, n)
        speech, target = speech * gaps, target * gaps
        noise = self._noise(size, n)
        snr = self._uniform(self.c.snr_low, self.c.snr_high, size)
        clean_only = self._rand(size) < self.c.p_clean
        gain = _rms(speech) / (_rms(noise) + 1e-8) * 10 ** (-snr / 20)
        noise = noise * torch.where(clean_only, torch.zeros_like(gain), gain)[:, None]
        noisy = speech + noise
        level = 10 ** (self._uniform(self.c.level_low_db, self.c.level_high_db, size) / 20)
        scale = level / (_rms(noisy) + 1e-8)
        scale = torch.minimum(scale, 0.99 / (noisy.abs().amax(-1) + 1e-8))  # never clip
        return noisy * scale[:, None], target * scale[:, None]

    # ---- pieces ---------------------------------------------------------------------------
    def _random_eq(self, x: torch.Tensor) -> torch.Tensor:
        """A smooth random gain curve over log-frequency, up to about +/-6 dB."""
        spec = torch.fft.rfft(x)
        f = torch.linspace(0, 1, spec.shape[-1], device=x.device)
        logf = torch.log2(1 + 63 * f) / 6  # 0..1, roughly octave-spaced
        k = torch.arange(1, 4, device=x.device)
        coef = (self._rand(x.shape[0], 3) - 0.5) * 0.7
        gain_db = (coef[:, :, None] * torch.cos(math.pi * k[None, :, None] * logf[None, None, :])).sum(1) * 10
        return torch.fft.irfft(spec * 10 ** (gain_db / 20), n=x.shape[-1])

    def _reverberate(self, speech: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reverberant input; target keeps the direct path and early reflections only."""
        b, n = speech.shape
        use = self._rand(b) < self.c.p_reverb
        if not bool(use.any()):
            return speech, speech
        rir = self._rir_batch(b)
        early = int(self.c.early_ms * self.c.sample_rate / 1000)
        rir_early = rir.clone()
        rir_early[:, early:] = 0
        size = n + rir.shape[-1]
        fs = torch.fft.rfft(speech, n=size)
        wet = torch.fft.irfft(fs * torch.fft.rfft(rir, n=size), n=size)[:, :n]
        dry = torch.fft.irfft(fs * torch.fft.rfft(rir_early, n=size), n=size)[:, :n]
        # keep the reverberant level where the speech was
        norm = _rms(speech) / (_rms(dry) + 1e-8)
        wet, dry = wet * norm[:, None], dry * norm[:, None]
        pick = use[:, None]
        return torch.where(pick, wet, speech), torch.where(pick, dry, speech)

    def _rir_batch(self, b: int) -> torch.Tensor:
        """Half real RIRs, half simulated rooms (exponentially decaying noise, RT60 0.15-1.0 s)."""
        sr = self.c.sample_rate
        length = sr
        t = torch.arange(length, device=self.device) / sr
        rt60 = self._uniform(0.15, 1.0, b)
        decay = torch.exp(-6.9 * t[None, :] / rt60[:, None])
        sim = torch.randn(b, length, generator=self.gen, device=self.device) * decay * 0.3
        sim[:, 0] = 1.0
        if not self.rirs:
            return sim
        real = torch.zeros(b, length, device=self.device)
        idx = torch.randint(0, len(self.rirs), (b,), generator=self.gen, device=self.device)
        for i, j in enumerate(idx.tolist()):
            r = self.rirs[j]
            real[i, : r.shape[0]] = r
        use_real = (self._rand(b) < 0.5)[:, None]
        return torch.where(use_real, real, sim)

    def _gap_mask(self, b: int, n: int) -> torch.Tensor:
        """Silence 1-2 random spans of 0.2-1.0 s (10 ms fades), so the model learns to hold quiet."""
        sr = self.c.sample_rate
        t = torch.arange(n, device=self.device)[None, :].float()
        mask = torch.ones(b, n, device=self.device)
        use = (self._rand(b) < self.c.p_gap).float()
        for _ in range(2):
            start = self._rand(b) * n
            length = self._uniform(0.2 * sr, 1.0 * sr, b)
            fade = 0.01 * sr
            inside = torch.clamp(
                torch.minimum(t - start[:, None], start[:, None] + length[:, None] - t) / fade, 0, 1
            )
            mask = mask * (1 - inside * use[:, None])
        return mask

    def _noise(self, b: int, n: int) -> torch.Tensor:
        noise = self._random_eq(self.noise.crop(b, n, self.gen))
        second = self._random_eq(self.noise.crop(b, n, self.gen))
        rel = 10 ** (self._uniform(-10, 5, b) / 20) * _rms(noise) / (_rms(second) + 1e-8)
        noise = noise + (self._rand(b) < self.c.p_second_noise).float()[:, None] * second * rel[:, None]
        synth = self._synthetic(b, n)
        rel = 10 ** (self._uniform(-15, 5, b) / 20) * (_rms(noise) + 1e-8) / (_rms(synth) + 1e-8)
        replace = self._rand(b) < 0.3  # synthetic alone, or on top of the real noise
        with_synth = torch.where(replace[:, None], synth, noise + synth * rel[:, None])
        return torch.where((self._rand(b) < self.c.p_synthetic)[:, None], with_synth, noise)

    def _synthetic(self, b: int, n: int) -> torch.Tensor:
        sr = self.c.sample_rate
        t = torch.arange(n, device=self.device)[None, :] / sr
        kind = torch.randint(0, 4, (b,), generator=self.gen, device=self.device)
        # coloured noise: 1/f^alpha, alpha in [0, 2] (white .. brown)
        white = torch.randn(b, n, generator=self.gen, device=self.device)
        spec = torch.fft.rfft(white)
        f = torch.fft.rfftfreq(n, 1 / sr).to(self.device).clamp(min=20.0)
        alpha = self._uniform(0, 2, b)
        coloured = torch.fft.irfft(spec * f[None, :] ** (-alpha[:, None] / 2), n=n)
        # mains hum: 50/60 Hz with random harmonic amplitudes
        f0 = torch.where(self._rand(b) < 0.5, 50.0, 60.0) * self._uniform(0.98, 1.02, b)
        hum = sum(
            self._rand(b)[:, None]
            / h
            * torch.sin(2 * math.pi * h * f0[:, None] * t + 6.28 * self._rand(b)[:, None])
            for h in range(1, 9)
        )
        # tonal whine with slow vibrato
        fw = self._uniform(400, 6000, b)
        vib = 1 + 0.01 * torch.sin(2 * math.pi * self._uniform(0.2, 3, b)[:, None] * t)
        whine = torch.sin(2 * math.pi * torch.cumsum(fw[:, None] * vib, -1) / sr)
        # clicks: sparse impulses through a short decaying resonance
        rate = self._uniform(2, 30, b)
        clicks = (self._rand(b, n) < (rate / sr)[:, None]).float() * torch.randn(
            b, n, generator=self.gen, device=self.device
        )
        ring = torch.exp(-torch.arange(160, device=self.device) / 20.0) * torch.sin(
            2 * math.pi * torch.arange(160, device=self.device) * 2000 / sr)
        clicks = torch.fft.irfft(
            torch.fft.rfft(clicks, n=n + 160) * torch.fft.rfft(ring, n=n + 160), n=n + 160
        )[:, :n]
        options = torch.stack([coloured, hum, whine, clicks], 1)
        return options[torch.arange(b, device=self.device), kind]


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).mean(-1).sqrt()
