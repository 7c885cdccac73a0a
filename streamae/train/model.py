"""The causal 1-D convolutional denoising autoencoder.

encoder (learned filterbank, window W, hop H) -> ReLU code
  -> mask network (causal dilated conv blocks on the log-code, optionally also on a
     look-back log spectrum over a longer window that ends where the frame ends)
  -> masked code -> transposed-conv decoder (overlap-add).

Latency is set by the synthesis window W alone; the look-back window only reaches into the
past, so it buys frequency resolution for the mask without adding delay.

Every convolution is causal and written as `step(audio, states) -> (clean, states)`, so
the same module exports a whole-signal graph (zero states, one call) and a streaming
step graph (states as explicit inputs/outputs) that agree sample for sample.
"""
from __future__ import annotations

import math
import torch
from torch import nn
import torch.nn.functional as F

from .config import DenoiserConfig


LOG_FLOOR = 1e-4  # keeps log(code) finite where the ReLU code is exactly zero


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
        self.overlap = c.window - c.hop
        self.history = max(c.window, c.context_window) - c.hop  # input samples carried between steps
        self.encoder = nn.Conv1d(1, c.code, c.window, stride=c.hop, bias=False)
        self.features = nn.Sequential(nn.Conv1d(c.code, c.bottleneck, 1), nn.BatchNorm1d(c.bottleneck))
        self.blocks = nn.ModuleList(CausalBlock(c.bottleneck, c.hidden, c.kernel, d) for d in c.dilations)
        self.mask = nn.Conv1d(c.bottleneck, c.code, 1)
        self.decoder = nn.ConvTranspose1d(c.code, 1, c.window, stride=c.hop, bias=False)
        self._init_filterbank()
        if c.context_window:
            bins = min(c.context_bins, c.context_window // 2 + 1)  # none past Nyquist
            self.register_buffer("context_basis", _fourier_basis(c.context_window, bins))
            self.context = nn.Sequential(nn.BatchNorm1d(bins), nn.Conv1d(bins, c.bottleneck, 1))
            nn.init.zeros_(self.context[1].weight)  # starts as the model without it (fine-tune from v1)
            nn.init.zeros_(self.context[1].bias)

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
            nn.init.constant_(self.mask.bias, 3.0)  # mask ~0.95: start near pass-through
            nn.init.zeros_(self.mask.weight)
            probe = torch.randn(1, 1, 64 * c.hop)
            out = self.decoder(F.relu(self.encoder(probe)))[..., : probe.shape[-1]]
            self.decoder.weight.mul_((probe.std() / out.std()) / torch.sigmoid(torch.tensor(3.0)))

    # ---- state ---------------------------------------------------------------------------
    def state_shapes(self, batch: int = 1) -> list[tuple[int, ...]]:
        """Shapes of the streaming states, in the order `step` takes and returns them."""
        c = self.config
        shapes = [(batch, 1, self.history)]  # encoder input history
        shapes += [(batch, c.bottleneck, b.context) for b in self.blocks]
        shapes.append((batch, 1, self.overlap))  # decoder overlap-add tail
        return shapes

    def initial_states(self, batch: int = 1, device=None) -> list[torch.Tensor]:
        return [torch.zeros(s, device=device) for s in self.state_shapes(batch)]

    # ---- computation ---------------------------------------------------------------------
    def step(self, audio: torch.Tensor, states: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """audio [B, T*H] of new samples -> (clean [B, T*H], new states, masked code).

        The clean samples come out `window - hop` samples late: the decoder tail of the last
        frame needs the next frame before it is final.
        """
        enc_state, *block_states, dec_state = states
        x = torch.cat([enc_state, audio.unsqueeze(1)], dim=-1)
        new_enc_state = x[..., x.shape[-1] - self.history:]
        code = F.relu(self.encoder(x[..., self.history - self.overlap:]))
        h = self.features(torch.log(code + LOG_FLOOR))
        if self.config.context_window:
            h = h + self.context(self._log_spectrum(x[..., self.history + self.config.hop - self.config.context_window:]))
        new_block_states = []
        for block, state in zip(self.blocks, block_states):
            h, s = block(h, state)
            new_block_states.append(s)
        masked = code * torch.sigmoid(self.mask(h))
        frames = self.decoder(masked)  # [B, 1, T*H + overlap]
        n = audio.shape[-1]
        frames = frames + F.pad(dec_state, (0, n))
        clean = frames[..., :n].squeeze(1)
        new_dec_state = frames[..., n:]
        return clean, [new_enc_state, *new_block_states, new_dec_state], masked

    def _log_spectrum(self, x: torch.Tensor) -> torch.Tensor:
        parts = F.conv1d(x, self.context_basis, stride=self.config.hop)  # [B, 2*bins, T]
        re, im = parts.chunk(2, dim=1)
        # clamp, not `+ LOG_FLOOR ** 2`: the ONNX optimizer drops an add of 1e-8 as "adding zero",
        # and digital silence then gives log(0) = -inf, NaN ever after in the stream
        return 0.5 * torch.log(torch.clamp(re * re + im * im, min=LOG_FLOOR ** 2))

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


def _fourier_basis(window: int, bins: int) -> torch.Tensor:
    """Hann-windowed cos/sin rows for DFT bins 0..bins-1: [2*bins, 1, window]."""
    n = torch.arange(window, dtype=torch.float64)
    hann = 0.5 - 0.5 * torch.cos(2 * math.pi * (n + 0.5) / window)
    phase = 2 * math.pi * torch.arange(bins, dtype=torch.float64)[:, None] * n[None, :] / window
    basis = torch.cat([torch.cos(phase), torch.sin(phase)]) * hann / hann.sum()
    return basis[:, None, :].float()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
