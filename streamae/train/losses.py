"""Training losses: SNR on the waveform plus a multi-resolution STFT magnitude loss, and optional
terms for over-suppression (speech energy the estimate lost) and intelligibility (STOI)."""
from __future__ import annotations

import torch

from .config import STOI_BANDS

EPS = 1e-8


def snr_db(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-example SNR (dB); scale-dependent on purpose, so the level is kept too."""
    noise = (target - estimate).pow(2).sum(-1)
    return 10 * torch.log10(target.pow(2).sum(-1) + EPS) - 10 * torch.log10(noise + EPS)


def si_sdr_db(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    target = target - target.mean(-1, keepdim=True)
    estimate = estimate - estimate.mean(-1, keepdim=True)
    scale = (estimate * target).sum(-1, keepdim=True) / (target.pow(2).sum(-1, keepdim=True) + EPS)
    projection = scale * target
    return 10 * torch.log10(projection.pow(2).sum(-1) + EPS) - 10 * torch.log10(
        (estimate - projection).pow(2).sum(-1) + EPS
    )


def multi_resolution_stft(estimate: torch.Tensor, target: torch.Tensor, reference: torch.Tensor,
                          sizes: tuple[int, ...] = (256, 512, 1024)) -> torch.Tensor:
    """Spectral convergence + log-magnitude L1, on signals normalised by `reference`'s RMS
    (the noisy input) so every input level counts the same."""
    norm = _rms(reference)
    estimate, target = estimate / norm, target / norm
    total = estimate.new_zeros(())
    for n in sizes:
        est, tgt = _stft_magnitude(estimate, n), _stft_magnitude(target, n)
        # sqrt(sum + eps), not .norm(): the norm's gradient at exactly zero is undefined
        convergence = _safe_norm(tgt - est) / (_safe_norm(tgt) + 1e-5)
        log_mag = (torch.log(est + 1e-5) - torch.log(tgt + 1e-5)).abs().mean(dim=(-2, -1))
        total = total + (convergence + log_mag).mean()
    return total / len(sizes)


def over_suppression(
    estimate: torch.Tensor, target: torch.Tensor, reference: torch.Tensor, n: int = 512
) -> torch.Tensor:
    """Mean squared shortfall of the estimate's compressed magnitude below the clean one's.

    The symmetric losses trade removed noise against removed speech one for one; listeners (and
    STOI) punish lost consonants far more than residual noise, so this term charges only for the
    missing speech (the asymmetric loss of Eskimez et al. 2022). The 0.3 power compresses the
    range, so weak high-frequency speech still counts."""
    norm = _rms(reference)
    est, tgt = _stft_magnitude(estimate / norm, n).pow(0.3), _stft_magnitude(target / norm, n).pow(0.3)
    return torch.relu(tgt - est).pow(2).mean()


def intelligibility(estimate: torch.Tensor, target: torch.Tensor, rate: int = 16000,
                    bands: int = STOI_BANDS) -> torch.Tensor:
    """1 - a differentiable STOI (Taal et al. 2011), averaged over the batch. STOI is the score
    the mask loses most on at low SNR, where the symmetric losses settle for an error that
    garbles the speech envelope. More `bands` than STOI's 15 reach above 4.3 kHz (18: to 8 kHz),
    so the fricatives STOI ignores are not traded for it."""
    return 1 - band_correlations(estimate, target, rate, bands).mean()


def band_correlations(estimate: torch.Tensor, target: torch.Tensor, rate: int = 16000,
                      bands: int = STOI_BANDS) -> torch.Tensor:
    """STOI per example and one-third-octave band [B, bands]: the correlation of the clean and the
    estimated band envelopes over 384 ms segments, the estimate's envelope normalised and clipped
    as STOI does it, averaged over segments (STOI is their mean over its 15 bands).

    Differences from pystoi (which it follows to 0.99 correlation over the dev mixtures): 16 kHz,
    25 ms frames at 12.5 ms hop (STOI: 10 kHz, 25.6 / 12.8 ms), and silent frames weight a
    segment down instead of being cut out of the signal."""
    frame, hop, fft = rate // 40, rate // 80, 1 << (rate // 40 - 1).bit_length()
    window = torch.hann_window(frame, device=estimate.device)
    band_matrix = _third_octave_bands(fft, rate, bands, estimate.device)  # [bands, bins]

    def power(x: torch.Tensor) -> torch.Tensor:  # [B, bins, frames]
        spectrum = torch.stft(x, fft, hop, frame, window=window, center=False, return_complex=True)
        return spectrum.real.pow(2) + spectrum.imag.pow(2)

    clean_power = power(target)
    clean, estimated = (
        (band_matrix @ clean_power + 1e-10).sqrt(),
        (band_matrix @ power(estimate) + 1e-10).sqrt(),
    )
    frames = 30  # a segment: 384 ms in STOI
    clean_seg, est_seg = (
        clean.unfold(-1, frames, 1),
        estimated.unfold(-1, frames, 1),
    )  # [B, bands, segments, frames]
    scale = clean_seg.norm(dim=-1, keepdim=True) / (est_seg.norm(dim=-1, keepdim=True) + 1e-10)
    clipped = torch.minimum(est_seg * scale, clean_seg * (1 + 10 ** (15 / 20)))
    a = clean_seg - clean_seg.mean(-1, keepdim=True)
    b = clipped - clipped.mean(-1, keepdim=True)
    correlation = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1) + 1e-10)  # [B, bands, segments]
    frame_energy = 10 * torch.log10(clean_power.sum(-2) + 1e-12)
    active = (frame_energy > frame_energy.amax(-1, keepdim=True) - 40).float()
    weight = active.unfold(-1, frames, 1).mean(-1)[:, None, :]  # [B, 1, segments]
    return (correlation * weight).sum(-1) / (weight.sum(-1) + 1e-10)


def _third_octave_bands(fft: int, rate: int, count: int, device) -> torch.Tensor:
    """One-third-octave bands from 150 Hz (STOI's first 15), as a 0/1 matrix over the FFT bins."""
    freqs = torch.arange(fft // 2 + 1, device=device) * rate / fft
    centers = 150.0 * 2.0 ** (torch.arange(count, device=device) / 3)
    low, high = centers * 2 ** (-1 / 6), centers * 2 ** (1 / 6)
    return ((freqs[None, :] >= low[:, None]) & (freqs[None, :] < high[:, None])).float()


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).mean(-1, keepdim=True).sqrt() + 1e-5


def _stft_magnitude(x: torch.Tensor, n: int) -> torch.Tensor:
    window = torch.hann_window(n, device=x.device)
    return _magnitude(torch.stft(x, n, n // 4, window=window, return_complex=True))


def _magnitude(z: torch.Tensor) -> torch.Tensor:
    """|z| with a finite gradient everywhere. Complex .abs() back-propagates NaN at denormal bins
    (|z| ~ 1e-41, from a nearly silent estimate) on torch's scalar path: the cause of the rare
    non-finite training batches."""
    return (z.real.pow(2) + z.imag.pow(2) + 1e-12).sqrt()


def _safe_norm(x: torch.Tensor) -> torch.Tensor:
    return (x.pow(2).sum(dim=(-2, -1)) + 1e-10).sqrt()
