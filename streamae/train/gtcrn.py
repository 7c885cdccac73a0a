"""GTCRN (Rong et al., "GTCRN: a speech enhancement model requiring ultralow computational
resources", ICASSP 2024), written for streamae from the paper and the published weights' names
and shapes, so the authors' DNS3-trained weights (MIT) can start our models.

STFT (fixed conv bases, as DenoiserNet's spectral front end) -> magnitude, real and imaginary
parts -> 257 bins merged to 129 (65 low bins, 64 ERB bands) -> each bin with its two neighbours
-> two stride-2 convs over frequency (129 -> 65 -> 33) -> three grouped temporal conv blocks
(depthwise causal convs dilated 1, 2, 5 frames in time, each gated by a GRU over its channels'
energy) -> two dual-path grouped GRUs (bidirectional over frequency, causal over time) -> the
mirrored decoder, with skip connections -> a complex ratio mask on the 257 bins -> the masked
spectrum (the code, which carries the sparsity penalty) -> inverse STFT and overlap-add.

Every layer is causal in time and written as `step(audio, states) -> (clean, states, code)`, as
DenoiserNet is: the whole-signal forward is one step from zero states, the exported step graph
is the same module, and the two agree sample for sample. The decoder's transposed convolutions
that do not upsample are ordinary causal convolutions here; `from_published` flips and transposes
their weights accordingly.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import GTCRNConfig
from .model import asymmetric_windows, sqrt_hann, stft_bases

LAYER_NORM_EPS = 1e-8


def erb_filterbank(config: GTCRNConfig) -> torch.Tensor:
    """[erb_bands, bins above low_bins]: triangular bands whose edges are equally spaced on the
    ERB-rate scale from the first merged bin to Nyquist; the first band is a falling half
    triangle, the last the complement of the one before it."""
    c = config
    erb = lambda hz: 21.4 * np.log10(0.00437 * hz + 1)  # noqa: E731
    hz = lambda e: (10 ** (e / 21.4) - 1) / 0.00437  # noqa: E731
    edges_erb = np.linspace(erb(c.low_bins / c.fft * c.sample_rate), erb(c.sample_rate / 2), c.erb_bands)
    edges = np.round(hz(edges_erb) / c.sample_rate * c.fft).astype(np.int64)
    bank = np.zeros((c.erb_bands, c.fft // 2 + 1), np.float32)
    tiny = 1e-12

    def ramp(lo: int, hi: int, rising: bool) -> np.ndarray:
        k = np.arange(lo, hi)
        return ((k - lo) if rising else (hi - k)) / (hi - lo + tiny) + tiny / (hi - lo + tiny)

    bank[0, edges[0]:edges[1]] = ramp(edges[0], edges[1], rising=False)
    for band in range(1, c.erb_bands - 1):
        lo, mid, hi = edges[band - 1], edges[band], edges[band + 1]
        bank[band, lo:mid] = ramp(lo, mid, rising=True)
        bank[band, mid:hi] = ramp(mid, hi, rising=False)
    last = slice(edges[-2], edges[-1] + 1)
    bank[-1, last] = 1 - bank[-2, last]
    return torch.from_numpy(np.abs(bank[:, c.low_bins:]))


def with_neighbours(x: torch.Tensor) -> torch.Tensor:
    """[B, C, T, F] -> [B, 3C, T, F]: each bin with the one below and above it (zero at the edges),
    channel c * 3 + k holding bin f - 1 + k of channel c (GTCRN's subband feature extraction)."""
    padded = F.pad(x, (1, 1))
    width = x.shape[-1]
    return torch.stack([padded[..., k:k + width] for k in range(3)], dim=2).flatten(1, 2)


class FrequencyConv(nn.Module):
    """A stride-2 conv over frequency (or its transpose, to upsample) -> BatchNorm -> PReLU, or
    Tanh for the mask's last layer. Kernel 1 in time: no state."""

    def __init__(self, inp: int, out: int, groups: int = 1, upsample: bool = False, last: bool = False):
        super().__init__()
        conv = nn.ConvTranspose2d if upsample else nn.Conv2d
        self.conv = conv(inp, out, (1, 5), stride=(1, 2), padding=(0, 2), groups=groups)
        self.norm = nn.BatchNorm2d(out)
        self.act = nn.Tanh() if last else nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class TemporalAttention(nn.Module):
    """Gates each channel per frame by a GRU that follows the channel's energy over time."""

    def __init__(self, channels: int):
        super().__init__()
        self.gru = nn.GRU(channels, 2 * channels)  # time-major, as ONNX's GRU
        self.gate = nn.Linear(2 * channels, channels)

    def forward(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, C, T, F], state [1, B, 2C]."""
        energy = x.pow(2).mean(-1).permute(2, 0, 1)  # [T, B, C]
        out, state = self.gru(energy, state)
        gate = torch.sigmoid(self.gate(out)).permute(1, 2, 0)  # [B, C, T]
        return x * gate.unsqueeze(-1), state


class GroupedTemporalBlock(nn.Module):
    """Half the channels pass; the other half (each bin with its neighbours) go through a 1x1 conv,
    a depthwise causal conv over 3 frames `dilation` apart (and 3 bins), a 1x1 conv back and the
    temporal attention; the halves are then interleaved (ShuffleNetV2's channel shuffle)."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        half = channels // 2
        self.context = 2 * dilation  # past frames the depthwise conv reaches
        self.expand = nn.Conv2d(3 * half, channels, 1)
        self.expand_norm = nn.BatchNorm2d(channels)
        self.expand_act = nn.PReLU()
        self.temporal = nn.Conv2d(channels, channels, (3, 3), padding=(0, 1), dilation=(dilation, 1),
                                  groups=channels)
        self.temporal_norm = nn.BatchNorm2d(channels)
        self.temporal_act = nn.PReLU()
        self.project = nn.Conv2d(channels, half, 1)
        self.project_norm = nn.BatchNorm2d(half)
        self.attention = TemporalAttention(half)

    def forward(self, x: torch.Tensor, conv_state: torch.Tensor,
                attention_state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B, C, T, F]; conv_state [B, C, context, F] (the expanded past frames)."""
        active, passive = x.chunk(2, dim=1)
        h = self.expand_act(self.expand_norm(self.expand(with_neighbours(active))))
        padded = torch.cat([conv_state, h], dim=2)
        conv_state = padded[:, :, padded.shape[2] - self.context:]
        h = self.temporal_act(self.temporal_norm(self.temporal(padded)))
        h, attention_state = self.attention(self.project_norm(self.project(h)), attention_state)
        return torch.stack([h, passive], dim=2).flatten(1, 2), conv_state, attention_state


class DualPathGRU(nn.Module):
    """A grouped GRU across frequency (both ways, within the frame) and a grouped GRU along time
    (causal, carrying a state per bin), each followed by a linear layer, a LayerNorm over the
    frame and a residual add. Grouped: each half of the channels has its own GRUs."""

    def __init__(self, channels: int, width: int):
        super().__init__()
        half = channels // 2
        self.across_forward = nn.ModuleList(nn.GRU(half, half // 2) for _ in range(2))
        self.across_backward = nn.ModuleList(nn.GRU(half, half // 2) for _ in range(2))
        self.across_fc = nn.Linear(channels, channels)
        self.across_norm = nn.LayerNorm((width, channels), eps=LAYER_NORM_EPS)
        self.along = nn.ModuleList(nn.GRU(half, half) for _ in range(2))
        self.along_fc = nn.Linear(channels, channels)
        self.along_norm = nn.LayerNorm((width, channels), eps=LAYER_NORM_EPS)

    def forward(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, C, T, F], state [1, B*F, C] (both groups' hidden states side by side)."""
        b, c, t, f = x.shape
        h = x.permute(3, 0, 2, 1).reshape(f, b * t, c)  # frequency-major: [F, B*T, C]
        outs = []
        start = h.new_zeros(1, b * t, c // 4)  # within a frame: no state carried
        for group, (fwd, bwd) in zip(h.chunk(2, dim=-1), zip(self.across_forward, self.across_backward)):
            outs.append(fwd(group, start)[0])
            outs.append(bwd(group.flip(0), start)[0].flip(0))
        across = self.across_fc(torch.cat(outs, dim=-1)).reshape(f, b, t, c).permute(1, 2, 0, 3)  # B,T,F,C
        h = x.permute(0, 2, 3, 1) + self.across_norm(across)
        seq = h.permute(1, 0, 2, 3).reshape(t, b * f, c)  # time-major: [T, B*F, C]
        outs, states = [], []
        for group, group_state, gru in zip(seq.chunk(2, dim=-1), state.chunk(2, dim=-1), self.along):
            out, s = gru(group, group_state.contiguous())
            outs.append(out)
            states.append(s)
        along = self.along_fc(torch.cat(outs, dim=-1)).reshape(t, b, f, c).permute(1, 0, 2, 3)
        h = h + self.along_norm(along)
        return h.permute(0, 3, 1, 2), torch.cat(states, dim=-1)


class GTCRNet(nn.Module):
    def __init__(self, config: GTCRNConfig = GTCRNConfig()):
        super().__init__()
        c = self.config = config
        self.overlap = c.window - c.hop  # the output's delay
        self.history = c.fft - c.hop  # input samples carried between steps
        analysis, synthesis = stft_bases(*self.windows())
        self.register_buffer("analysis_basis", analysis)
        self.register_buffer("synthesis_basis", synthesis)
        bank = erb_filterbank(c)
        self.register_buffer("erb_merge", bank.T.contiguous())  # [high bins, bands]
        self.register_buffer("erb_split", bank.clone())  # [bands, high bins]
        ch = c.channels
        self.encoder_convs = nn.ModuleList([FrequencyConv(9, ch), FrequencyConv(ch, ch, groups=2)])
        self.encoder_blocks = nn.ModuleList(GroupedTemporalBlock(ch, d) for d in c.dilations)
        self.dual_path = nn.ModuleList(DualPathGRU(ch, c.rnn_width) for _ in range(2))
        self.decoder_blocks = nn.ModuleList(GroupedTemporalBlock(ch, d) for d in reversed(c.dilations))
        self.decoder_convs = nn.ModuleList([FrequencyConv(ch, ch, groups=2, upsample=True),
                                            FrequencyConv(ch, 2, upsample=True, last=True)])

    def windows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(analysis window [fft], synthesis window [window]), float64: sqrt-Hann both at the
        published frame; else asymmetric, the analysis one scaled to the sqrt-Hann's norm, so the
        features keep the level the weights learned."""
        c = self.config
        if c.window == c.fft:
            return sqrt_hann(c.fft), sqrt_hann(c.fft)
        return asymmetric_windows(c.fft, c.window, norm=sqrt_hann(c.fft).norm().item())

    # ---- state ---------------------------------------------------------------------------
    def state_shapes(self, batch: int = 1) -> list[tuple[int, ...]]:
        """Shapes of the streaming states, in the order `step` takes and returns them: input
        history, each block's (conv, attention) states, the dual-path states, the overlap tail."""
        ch, w = self.config.channels, self.config.rnn_width
        blocks = [s for b in [*self.encoder_blocks, *self.decoder_blocks]
                  for s in ((batch, ch, b.context, w), (1, batch, ch))]
        return [(batch, 1, self.history), *blocks, *[(1, batch * w, ch)] * len(self.dual_path),
                (batch, 1, self.overlap)]

    def initial_states(self, batch: int = 1, device=None) -> list[torch.Tensor]:
        return [torch.zeros(s, device=device) for s in self.state_shapes(batch)]

    # ---- computation ---------------------------------------------------------------------
    def step(self, audio: torch.Tensor, states: list[torch.Tensor]
             ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """audio [B, T*hop] of new samples -> (clean [B, T*hop], new states, code [B, bins, T]).

        The clean samples come out `window - hop` samples late: the last frame's tail needs the
        next frame before it is final."""
        history, *inner, tail = states
        x = torch.cat([history, audio.unsqueeze(1)], dim=-1)
        spectrum = F.conv1d(x, self.analysis_basis, stride=self.config.hop)  # [B, 2*bins, T]
        re, im = spectrum.transpose(1, 2).chunk(2, dim=-1)  # [B, T, bins]
        mask, inner = self.mask(re, im, inner)
        mask_re, mask_im = mask[:, 0].transpose(1, 2), mask[:, 1].transpose(1, 2)  # [B, bins, T]
        re, im = re.transpose(1, 2), im.transpose(1, 2)
        out_re, out_im = re * mask_re - im * mask_im, im * mask_re + re * mask_im
        code = torch.sqrt(out_re * out_re + out_im * out_im + 1e-12)
        frames = F.conv_transpose1d(torch.cat([out_re, out_im], dim=1), self.synthesis_basis,
                                    stride=self.config.hop)
        n = audio.shape[-1]
        frames = frames + F.pad(tail, (0, n))
        return frames[:, 0, :n], [x[..., x.shape[-1] - self.history:], *inner, frames[..., n:]], code

    def mask(self, re: torch.Tensor, im: torch.Tensor, states: list[torch.Tensor]
             ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Spectrum [B, T, bins] real and imaginary -> (complex mask [B, 2, T, bins], new states)."""
        magnitude = torch.sqrt(re * re + im * im + 1e-12)
        h = with_neighbours(self.merge_bands(torch.stack([magnitude, re, im], dim=1)))
        skips, new_states = [], []
        for conv in self.encoder_convs:
            h = conv(h)
            skips.append(h)
        blocks = [*self.encoder_blocks, *self.decoder_blocks]
        block_states = [states[2 * i: 2 * i + 2] for i in range(len(blocks))]
        dual_states = states[2 * len(blocks):]
        block_out = []
        for block, (conv_state, att_state) in zip(self.encoder_blocks, block_states):
            h, conv_state, att_state = block(h, conv_state, att_state)
            skips.append(h)
            block_out += [conv_state, att_state]
        dual_out = []
        for layer, state in zip(self.dual_path, dual_states):
            h, state = layer(h, state)
            dual_out.append(state)
        decoder_states = block_states[len(self.encoder_blocks):]
        for block, (conv_state, att_state) in zip(self.decoder_blocks, decoder_states):
            h, conv_state, att_state = block(h + skips.pop(), conv_state, att_state)
            block_out += [conv_state, att_state]
        for conv in self.decoder_convs:
            h = conv(h + skips.pop())
        new_states = block_out + dual_out
        return self.split_bands(h), new_states

    def merge_bands(self, x: torch.Tensor) -> torch.Tensor:
        low = self.config.low_bins
        return torch.cat([x[..., :low], x[..., low:] @ self.erb_merge], dim=-1)

    def split_bands(self, x: torch.Tensor) -> torch.Tensor:
        low = self.config.low_bins
        return torch.cat([x[..., :low], x[..., low:] @ self.erb_split], dim=-1)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Whole signal [B, N] (N a multiple of hop) -> time-aligned clean [B, N]."""
        return self.forward_with_code(audio)[0]

    def forward_with_code(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        clean, states, code = self.step(audio, self.initial_states(audio.shape[0], audio.device))
        out = torch.cat([clean, states[-1].squeeze(1)], dim=-1)
        return out[..., self.overlap:], code


# ---- the published weights -------------------------------------------------------------------

_UNIT = {"conv": "conv", "bn": "norm", "act": "act"}
_BLOCK = {"point_conv1": "expand", "point_bn1": "expand_norm", "point_act": "expand_act",
          "depth_conv": "temporal", "depth_bn": "temporal_norm", "depth_act": "temporal_act",
          "point_conv2": "project", "point_bn2": "project_norm", "tra": "attention",
          "att_gru": "gru", "att_fc": "gate"}
_DUAL = {"intra_fc": "across_fc", "intra_ln": "across_norm", "inter_fc": "along_fc", "inter_ln": "along_norm"}


def published_name(name: str) -> str:
    """A tensor's name in the authors' state dict -> its name here.

    Their encoder lists two convs then three blocks, their decoder three blocks then two convs;
    their dual-path modules and GRU groups count from 1."""
    parts = name.split(".")
    if name in ("erb.erb_fc.weight", "erb.ierb_fc.weight"):
        return "erb_merge" if name == "erb.erb_fc.weight" else "erb_split"
    if parts[0] in ("encoder", "decoder"):
        side, index, layer, rest = parts[0], int(parts[2]), parts[3], parts[4:]
        n_convs_first = 2 if side == "encoder" else 0
        is_conv = (index < 2) if side == "encoder" else (index >= 3)
        if is_conv:
            conv = index - (0 if side == "encoder" else 3)
            return ".".join([f"{side}_convs", str(conv), _UNIT[layer], *rest])
        block = index - n_convs_first
        return ".".join([f"{side}_blocks", str(block), _BLOCK[layer], *[_BLOCK.get(r, r) for r in rest]])
    if parts[0].startswith("dpgrnn"):
        layer = str(int(parts[0][-1]) - 1)
        if parts[1] in _DUAL:
            return ".".join(["dual_path", layer, _DUAL[parts[1]], *parts[2:]])
        group = str(int(parts[2][-1]) - 1)
        tensor = parts[3]
        if parts[1] == "inter_rnn":
            return ".".join(["dual_path", layer, "along", group, tensor])
        direction = "across_backward" if tensor.endswith("_reverse") else "across_forward"
        return ".".join(["dual_path", layer, direction, group, tensor.removesuffix("_reverse")])
    raise KeyError(f"unexpected tensor in the published GTCRN weights: {name}")


def from_published(published: dict[str, torch.Tensor]) -> GTCRNet:
    """The authors' state dict (`torch.load(tar)["model"]`) -> a GTCRNet computing the same.

    Their decoder's non-upsampling layers are transposed convolutions of stride 1, which equal
    causal convolutions with the kernel flipped in time and frequency and the channel axes
    swapped; their ERB matrices are Linear weights, ours the matrices themselves."""
    net = GTCRNet(GTCRNConfig())
    ours = {}
    for name, value in published.items():
        target = published_name(name)
        if target.startswith("decoder_blocks") and target.endswith(("expand.weight", "project.weight")):
            value = value.transpose(0, 1)
        elif target.startswith("decoder_blocks") and target.endswith("temporal.weight"):
            value = value.flip(2, 3)
        elif target in ("erb_merge", "erb_split"):
            value = value.T.contiguous()
        ours[target] = value
    if not torch.allclose(ours["erb_merge"], net.erb_merge, atol=1e-6):
        raise ValueError("the published ERB filterbank differs from erb_filterbank(): not GTCRN's shape")
    net.load_state_dict({**net.state_dict(), **ours})  # the STFT bases are ours alone
    return net
