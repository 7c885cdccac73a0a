"""The causal 1-D convolutional denoising autoencoder.

encoder -> code -> mask network (causal dilated conv blocks, or GRU layers, on the log-code)
  -> masked code [+ a deep filter's output] -> transposed-conv decoder (overlap-add), with one
  of two front ends:
  - learned filterbank (v1): window W, hop H, ReLU code;
  - spectral: a fixed asymmetric STFT, analysis window longer than W and reaching only into
    the past, so the mask works on fine frequency bins while the synthesis window W alone
    sets the latency.

Every convolution is causal and written as `step(audio, states) -> (clean, states)`, so
the same module exports a whole-signal graph (zero states, one call) and a streaming
step graph (states as explicit inputs/outputs; export.py lays `step` out as MatMuls for
onnxruntime) that agree sample for sample.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import DenoiserConfig

LOG_FLOOR = 1e-4  # keeps the log of the code finite where it is zero (ReLU, digital silence)


class CausalBlock(nn.Module):
    """Residual block: causal dilated conv (dense, so ONNX Runtime runs it as one GEMM) -> BN
    -> ReLU -> 1x1 back to the residual width."""

    def __init__(self, channels: int, hidden: int, kernel: int, dilation: int):
        super().__init__()
        self.context = (kernel - 1) * dilation
        self.conv = nn.Conv1d(channels, hidden, kernel, dilation=dilation)
        self.norm = nn.BatchNorm1d(hidden)
        self.project = nn.Conv1d(hidden, channels, 1)
        nn.init.zeros_(self.project.weight)  # each block starts as the identity
        nn.init.zeros_(self.project.bias)

    def forward(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        padded = torch.cat([state, x], dim=-1)
        new_state = padded[..., padded.shape[-1] - self.context:]
        return x + self.project(F.relu(self.norm(self.conv(padded)))), new_state


class DenoiserNet(nn.Module):
    def __init__(self, config: DenoiserConfig = DenoiserConfig()):
        super().__init__()
        c = config
        self.config = c
        self.spectral = c.analysis_window > c.window
        self.overlap = c.window - c.hop
        self.history = max(c.window, c.analysis_window) - c.hop  # input samples carried between steps
        if self.spectral:
            analysis, synthesis = asymmetric_stft(c.analysis_window, c.window)
            self.register_buffer("analysis_basis", analysis)
            self.register_buffer("synthesis_basis", synthesis)
            channels = analysis.shape[0] // 2
        else:
            self.encoder = nn.Conv1d(1, c.code, c.window, stride=c.hop, bias=False)
            self.decoder = nn.ConvTranspose1d(c.code, 1, c.window, stride=c.hop, bias=False)
            channels = c.code
        self.features = nn.Sequential(nn.Conv1d(channels, c.bottleneck, 1), nn.BatchNorm1d(c.bottleneck))
        if c.recurrent:
            self.blocks = nn.ModuleList()
            self.gru = nn.GRU(c.bottleneck, c.hidden, c.recurrent)  # time-major, as ONNX's GRU
        else:
            self.blocks = nn.ModuleList(CausalBlock(c.bottleneck, c.hidden, c.kernel, d) for d in c.dilations)
        width = c.hidden if c.recurrent else c.bottleneck
        self.mask = nn.Conv1d(width, channels, 1)
        nn.init.constant_(self.mask.bias, 3.0)  # mask ~0.95: start near pass-through
        nn.init.zeros_(self.mask.weight)
        # both start at zero, so adding them to a trained model changes nothing (train/grow.py)
        if c.uses_phase():
            if not self.spectral or c.deep_filter == 1:
                raise ValueError(
                    "the phase input and deep filter need the spectral front end; the filter 2 taps or more"
                )
            self.phase_features = nn.Conv1d(2 * c.low_band_bins(), c.bottleneck, 1, bias=False)
            nn.init.zeros_(self.phase_features.weight)
        if c.deep_filter:
            self.taps = nn.Conv1d(width, 2 * c.deep_filter * c.low_band_bins(), 1)
            nn.init.zeros_(self.taps.weight)
            nn.init.zeros_(self.taps.bias)
        if not self.spectral:
            self._init_filterbank()

    def _init_filterbank(self) -> None:
        """Start from a sqrt-Hann Fourier basis and its matched synthesis, passing audio through."""
        c = self.config
        n = torch.arange(c.window, dtype=torch.float64)
        window = torch.sin(math.pi * (n + 0.5) / c.window)  # sqrt of a periodic Hann
        freqs = (torch.arange(c.code // 2, dtype=torch.float64) + 0.5) * (0.5 / (c.code // 2))
        phase = 2 * math.pi * freqs[:, None] * n[None, :]
        basis = torch.cat([torch.cos(phase), torch.sin(phase)]) * window
        basis = basis / basis.norm(dim=1, keepdim=True)
        with torch.no_grad():
            self.encoder.weight.copy_(basis[:, None, :].float())
            # ReLU keeps half of each filter's response; +/- pairs are not present, so the
            # synthesis gain is fitted on white noise rather than derived.
            self.decoder.weight.copy_(basis[:, None, :].float())
            probe = torch.randn(1, 1, 64 * c.hop)
            out = self.decoder(F.relu(self.encoder(probe)))[..., : probe.shape[-1]]
            self.decoder.weight.mul_((probe.std() / out.std()) / torch.sigmoid(torch.tensor(3.0)))

    # ---- state ---------------------------------------------------------------------------
    def state_shapes(self, batch: int = 1) -> list[tuple[int, ...]]:
        """Shapes of the streaming states, in the order `step` takes and returns them."""
        c = self.config
        shapes = [(batch, 1, self.history)]  # encoder input history
        shapes += [(batch, c.bottleneck, b.context) for b in self.blocks]
        if c.recurrent:
            shapes.append((c.recurrent, batch, c.hidden))  # GRU hidden state, one row per layer
        if c.uses_phase():  # past frames of the low band, real then imaginary parts
            shapes.append((batch, 2 * c.low_band_bins(), c.past_frames()))
        shapes.append((batch, 1, self.overlap))  # decoder overlap-add tail
        return shapes

    def initial_states(self, batch: int = 1, device=None) -> list[torch.Tensor]:
        return [torch.zeros(s, device=device) for s in self.state_shapes(batch)]

    # ---- computation ---------------------------------------------------------------------
    def step(
        self, audio: torch.Tensor, states: list[torch.Tensor]
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """audio [B, T*H] of new samples -> (clean [B, T*H], new states, masked code).

        The clean samples come out `window - hop` samples late: the decoder tail of the last
        frame needs the next frame before it is final.
        """
        enc_state, *block_states, dec_state = states
        x = torch.cat([enc_state, audio.unsqueeze(1)], dim=-1)
        new_enc_state = x[..., x.shape[-1] - self.history:]
        code, log_code = self._encode(x)
        h = self.features[0](log_code)
        if self.config.uses_phase():
            *block_states, past = block_states
            low, new_past = low_band_history(past, code, self.config.low_band_bins(), time_dim=-1, dim=1)
            h = h + self.phase_features(phase_advance(low, past.shape[-1] - 1, time_dim=-1, dim=1))
        h = self.features[1](h)
        new_block_states = []
        if self.config.recurrent:
            out, hidden = self.gru(h.permute(2, 0, 1), block_states[0])  # [T, B, C]
            h = out.permute(1, 2, 0)
            new_block_states.append(hidden)
        for block, state in zip(self.blocks, block_states):
            h, s = block(h, state)
            new_block_states.append(s)
        mask = torch.sigmoid(self.mask(h))
        masked = code * (torch.cat([mask, mask], dim=1) if self.spectral else mask)
        if self.config.deep_filter:
            masked = add_to_low_bins(
                masked, deep_filter(low, torch.tanh(self.taps(h)), time_dim=-1, dim=1), dim=1
            )
        if self.config.uses_phase():
            new_block_states.append(new_past)
        sparse_view, frames = self._decode(masked)  # frames [B, 1, T*H + overlap]
        n = audio.shape[-1]
        frames = frames + F.pad(dec_state, (0, n))
        clean = frames[..., :n].squeeze(1)
        new_dec_state = frames[..., n:]
        return clean, [new_enc_state, *new_block_states, new_dec_state], sparse_view

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Input with history -> (code, its log magnitude for the mask network), a frame per hop."""
        if not self.spectral:
            return self.activate(self.encoder(x[..., self.history - self.overlap:]), dim=1)
        return self.activate(F.conv1d(x, self.analysis_basis, stride=self.config.hop), dim=1)

    def activate(self, analysed: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Analysis output (channels on `dim`) -> (code, log magnitude for the mask network).

        The learned front end's code is its ReLU; the spectral one's is the spectrum itself, real
        parts then imaginary, whose magnitude the mask network sees."""
        if not self.spectral:
            code = F.relu(analysed)
            return code, torch.log(code + LOG_FLOOR)
        re, im = analysed.chunk(2, dim=dim)
        # clamp, not `+ LOG_FLOOR ** 2`: the ONNX optimizer drops an add of 1e-8 as "adding zero",
        # and digital silence then gives log(0) = -inf, NaN ever after in the stream
        return analysed, 0.5 * torch.log(torch.clamp(re * re + im * im, min=LOG_FLOOR ** 2))

    def _decode(self, masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked code -> (the code as the sparsity measure sees it, overlap-add frames).

        The spectral front end's sparsity is that of the masked magnitude."""
        if not self.spectral:
            return masked, self.decoder(masked)
        re, im = masked.chunk(2, dim=1)
        magnitude = torch.sqrt(re * re + im * im + 1e-12)
        return magnitude, F.conv_transpose1d(masked, self.synthesis_basis, stride=self.config.hop)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Whole signal [B, N] (N a multiple of hop) -> time-aligned clean [B, N].

        The last `window - hop` output samples would need input past the end; they come from
        the decoder state, i.e. as if the signal stopped there.
        """
        return self.forward_with_code(audio)[0]

    def forward_with_code(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`forward`, plus the code [B, code, frames] that the sparsity penalty needs."""
        clean, states, code = self.step(audio, self.initial_states(audio.shape[0], audio.device))
        out = torch.cat([clean, states[-1].squeeze(1)], dim=-1)
        return out[..., self.overlap:], code


def asymmetric_stft(analysis: int, synthesis: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Conv weights of an asymmetric-window STFT that reconstructs perfectly at hop synthesis/2,
    its analysis window of unit energy (so the code has the input's scale, as in v1).
    -> ([2*bins, 1, analysis] real then imaginary rows, [2*bins, 1, synthesis] inverse rows)."""
    return stft_bases(*asymmetric_windows(analysis, synthesis))


def asymmetric_windows(analysis: int, synthesis: int, norm: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Analysis and synthesis windows whose product is a Hann of length `synthesis` at the end of
    the analysis frame, so they overlap-add to one at hop synthesis/2.

    The analysis window rises over most of `analysis` samples and falls with the last half of a
    sqrt-Hann of length `synthesis`; the synthesis window covers only the last `synthesis`
    samples, so each frame's output is final one hop after its last input sample, as with a
    short symmetric window (after Mauler & Martin 2007). `norm`: the analysis window's L2 norm.
    """
    n_long, half = analysis - synthesis // 2, synthesis // 2
    rise = torch.sin(math.pi * (torch.arange(n_long, dtype=torch.float64) + 0.5) / (2 * n_long))
    fall = torch.sin(math.pi * (torch.arange(half, synthesis, dtype=torch.float64) + 0.5) / synthesis)
    w_analysis = torch.cat([rise, fall])
    w_analysis = norm * w_analysis / w_analysis.norm()
    hann = torch.sin(math.pi * (torch.arange(synthesis, dtype=torch.float64) + 0.5) / synthesis) ** 2
    return w_analysis, hann / w_analysis[analysis - synthesis:]


def sqrt_hann(n: int) -> torch.Tensor:
    """The periodic sqrt-Hann window (torch.hann_window(n).sqrt()), float64."""
    return torch.sin(math.pi * torch.arange(n, dtype=torch.float64) / n)


def stft_bases(w_analysis: torch.Tensor, w_synthesis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Conv weights of a real STFT over len(w_analysis) samples (rfft of the windowed frame) and of
    its inverse (irfft) restricted to the frame's last len(w_synthesis) samples, times that window.
    -> ([2*bins, 1, analysis] real then imaginary rows, [2*bins, 1, synthesis] inverse rows)."""
    analysis, synthesis = len(w_analysis), len(w_synthesis)
    bins = analysis // 2 + 1
    k = torch.arange(bins, dtype=torch.float64)[:, None]
    n = torch.arange(analysis, dtype=torch.float64)[None, :]
    phase = 2 * math.pi * k * n / analysis
    forward = torch.cat([torch.cos(phase), -torch.sin(phase)]) * w_analysis
    weight = torch.full((bins, 1), 2.0 / analysis, dtype=torch.float64)
    weight[0] = weight[-1] = 1.0 / analysis  # DC and Nyquist appear once in the full spectrum
    tail = phase[:, analysis - synthesis:]
    inverse = torch.cat([weight * torch.cos(tail), -weight * torch.sin(tail)]) * w_synthesis
    return forward[:, None, :].float(), inverse[:, None, :].float()


# ---- phase input and deep filter: shared by the model and its exported step graph ------------
# Spectra here hold the real parts of all bins, then the imaginary parts, on axis `dim`;
# `time_dim` is the frame axis.

def low_band_history(past: torch.Tensor, code: torch.Tensor, bins: int, time_dim: int,
                     dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (the carried past frames, then the low band (lowest `bins`) of the new frames of `code`;
    the last frames of that, as many as `past` has, to carry to the next step)."""
    re, im = code.chunk(2, dim=dim)
    low = torch.cat(
        [past, torch.cat([re.narrow(dim, 0, bins), im.narrow(dim, 0, bins)], dim=dim)], dim=time_dim
    )
    kept = past.shape[time_dim]
    return low, low.narrow(time_dim, low.shape[time_dim] - kept, kept)


def add_to_low_bins(code: torch.Tensor, low: torch.Tensor, dim: int) -> torch.Tensor:
    """code + low, where low covers only the lowest bins."""
    re, im = code.chunk(2, dim=dim)
    low_re, low_im = low.chunk(2, dim=dim)
    bins = low_re.shape[dim]
    tail = re.shape[dim] - bins
    return torch.cat([re.narrow(dim, 0, bins) + low_re, re.narrow(dim, bins, tail),
                      im.narrow(dim, 0, bins) + low_im, im.narrow(dim, bins, tail)], dim=dim)


def phase_advance(spectrum: torch.Tensor, skip: int, time_dim: int, dim: int) -> torch.Tensor:
    """Each bin's phase change from one frame to the next, as a unit complex number: X(t) X*(t-1) /
    |X(t) X*(t-1)|. A steady harmonic advances at its own frequency from frame to frame, noise at
    random, which a magnitude cannot show. The first `skip` frames are history only: the output
    starts with the frame after them (so it has skip + 1 frames fewer)."""
    n = spectrum.shape[time_dim] - skip - 1
    re, im = spectrum.chunk(2, dim=dim)
    re0, im0 = re.narrow(time_dim, skip + 1, n), im.narrow(time_dim, skip + 1, n)
    re1, im1 = re.narrow(time_dim, skip, n), im.narrow(time_dim, skip, n)
    pr, pi = re0 * re1 + im0 * im1, im0 * re1 - re0 * im1
    scale = torch.rsqrt(torch.clamp(pr * pr + pi * pi, min=1e-24))  # clamp: digital silence stays finite
    return torch.cat([pr * scale, pi * scale], dim=dim)


def deep_filter(spectrum: torch.Tensor, taps: torch.Tensor, time_dim: int, dim: int) -> torch.Tensor:
    """sum over k of taps_k(t) X(t - k), complex, per bin. `spectrum` holds order - 1 frames of
    history before the T frames to filter; taps [order * bins real parts, then as many imaginary],
    tap k = 0 (the current frame) first. All taps are multiplied at once, side by side: in the step
    graph every node costs about a microsecond, whatever its size."""
    re, im = spectrum.chunk(2, dim=dim)
    taps_re, taps_im = taps.chunk(2, dim=dim)
    bins = re.shape[dim]
    order = taps_re.shape[dim] // bins
    n = re.shape[time_dim] - (order - 1)

    def frames_side_by_side(x: torch.Tensor) -> torch.Tensor:  # X(t), X(t - 1), ... on `dim`
        return torch.cat([x.narrow(time_dim, order - 1 - k, n) for k in range(order)], dim=dim)

    def sum_over_taps(x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(dim, (order, bins)).sum(dim)

    xr, xi = frames_side_by_side(re), frames_side_by_side(im)
    return torch.cat(
        [sum_over_taps(taps_re * xr - taps_im * xi), sum_over_taps(taps_re * xi + taps_im * xr)], dim=dim
    )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
