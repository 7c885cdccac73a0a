"""`GTCRNet.step` for one channel, laid out for onnxruntime's cost model (the exported step graph).

A live call is one or two frames, so the graph's cost is per node, not per multiply: onnxruntime
spends about a microsecond on a small MatMul or Gather and several on a Conv (plus the layout
reorders it brings). So the graph runs time-major and channels-last, [frames, bins, channels],
with BatchNorm folded into the weights and every convolution written as a Gather of its taps (a
constant index, pointing at a zero pad where the conv reads padding) and one MatMul:
- the STFT and its inverse are ONNX DFT nodes on the frame's hops side by side (a 512-point
  DFT node costs less than a MatMul with its basis); the ERB band merge of the high bins is a
  MatMul, and magnitude, real and imaginary parts stack as channels;
- a frequency conv (stride 2, or its transpose) with the neighbouring-bin features before it is
  one Gather + MatMul; the depthwise temporal conv is three time slices (state + new frames) side
  by side, one Gather of the frequency taps and one block-sparse MatMul;
- a grouped GRU is one ONNX GRU with block-diagonal weights; across frequency, both directions
  are one forward GRU over the bins beside the bins reversed; the channel shuffle is one Gather;
- the band split is a MatMul, the complex mask four products on the real and imaginary parts.
The state stays in onnxruntime between calls (`denoiser._ChannelState`); measured dead ends:
reshaping to two dimensions for fused Gemms (the reshapes cost what the fusion saves) and a
static one-frame graph (1 % faster).
Same arithmetic as `GTCRNet.step` (tests compare them); the runtime calls it per channel.
"""
from __future__ import annotations

import torch
from torch import nn

from .gtcrn import DualPathGRU, FrequencyConv, GroupedTemporalBlock, GTCRNet

GATES = 3  # r, z, n in torch; ONNX wants z, r, n (export.py's GRU translation reorders)


def fold_norm(weight: torch.Tensor, bias: torch.Tensor | None, norm: nn.Module | None,
              out_axis: int = 0, shift: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold an eval-mode BatchNorm into a conv's weight (output channels on `out_axis`) and bias.
    shift=False takes the norm's scale only, for a conv whose output is added to another's before it."""
    out = weight.shape[out_axis]
    bias = torch.zeros(out) if bias is None else bias
    if norm is None:
        return weight, bias
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    shape = [1] * weight.dim()
    shape[out_axis] = out
    folded_bias = (bias - norm.running_mean) * scale + norm.bias if shift else bias * scale
    return weight * scale.reshape(shape), folded_bias


class Affine(nn.Module):
    """x [..., in] @ weight [in, out] + bias; on [T, in] one Gemm. (Reshaping [T, F, in] to two
    dimensions for a Gemm measured no faster: the reshapes cost what the fusion saves.)"""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", weight.detach().clone().float())
        self.register_buffer("bias", bias.detach().clone().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return torch.addmm(self.bias, x, self.weight)
        return x @ self.weight + self.bias


class _FrequencyConv(nn.Module):
    """FrequencyConv (stride-2 conv over frequency, or its transpose) on [T, F, C], its input
    optionally with each bin's neighbours first (the encoder's first layer): Pad + Gather + MatMul."""

    def __init__(self, layer: FrequencyConv, width_in: int, neighbours: bool = False, padded: bool = False):
        super().__init__()
        conv = layer.conv
        upsample = isinstance(conv, nn.ConvTranspose2d)
        groups = conv.groups
        if upsample:  # weight [in, out/groups, 1, k]
            c_in, c_out = conv.weight.shape[0], conv.weight.shape[1] * groups
        else:  # weight [out, in/groups, 1, k]
            c_out, c_in = conv.weight.shape[0], conv.weight.shape[1] * groups
        k = conv.kernel_size[1]
        pad, stride = conv.padding[1], conv.stride[1]
        if upsample:
            width_out = (width_in - 1) * stride - 2 * pad + k
        else:
            width_out = (width_in + 2 * pad - k) // stride + 1
        sfe = 3 if neighbours else 1
        base = c_in // sfe  # channels before the neighbour expansion (which the conv's c_in counts)
        rows = []  # per output bin: an index into the padded input for each (tap j, neighbour k)
        dense = torch.zeros(k * sfe, base, c_out)  # [(j, k), channel, out]
        w = conv.weight.detach()
        in_per_group, out_per_group = c_in // groups, c_out // groups
        for j in range(k):
            for kk in range(sfe):
                for c in range(base):
                    channel = c * sfe + kk if neighbours else c
                    g = channel // in_per_group
                    for o in range(g * out_per_group, (g + 1) * out_per_group):
                        if upsample:
                            dense[j * sfe + kk, c, o] = w[channel, o - g * out_per_group, 0, j]
                        else:
                            dense[j * sfe + kk, c, o] = w[o, channel - g * in_per_group, 0, j]
        for f in range(width_out):
            row = []
            for j in range(k):
                if upsample:  # out[f] += w[j] x[i] where f = i * stride - pad + j
                    i, rem = divmod(f + pad - j, stride)
                    valid = rem == 0 and 0 <= i < width_in
                else:
                    i = f * stride - pad + j
                    valid = 0 <= i < width_in
                for kk in range(sfe):
                    source = i + kk - 1 if neighbours else i
                    row.append(source + 1 if valid and 0 <= source < width_in else 0)
            rows.append(row)
        self.register_buffer("index", torch.tensor(rows).reshape(-1))
        weight, bias = fold_norm(dense.reshape(k * sfe * base, c_out), conv.bias.detach(), layer.norm,
                                 out_axis=1)
        self.linear = Affine(weight, bias)
        self.act = layer.act
        self.width_out = width_out
        self.padded = padded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [T, F, C] -> [T, F_out, C_out]; `padded`: x already has a zero bin in front."""
        if not self.padded:  # a zero bin in front, where the padding taps point
            x = nn.functional.pad(x, (0, 0, 1, 0))
        taps = torch.index_select(x, 1, self.index).reshape(x.shape[0], self.width_out, -1)
        return self.act(self.linear(taps))


class _TemporalBlock(nn.Module):
    """GroupedTemporalBlock on [T, F, C] with its conv state [2d, F, C] and GRU state [1, 1, C]."""

    def __init__(self, block: GroupedTemporalBlock, width: int):
        super().__init__()
        half = block.project.out_channels
        self.half, self.context, self.dilation = half, block.context, block.context // 2
        neighbours = torch.tensor([[f + k if 0 <= f + k - 1 < width else 0 for k in range(3)]
                                   for f in range(width)])
        self.register_buffer("neighbours", neighbours.reshape(-1))  # into [zero, bins..., zero]
        ew = block.expand.weight.detach()[:, :, 0, 0]  # [hidden, half * 3] in (channel, neighbour) order
        hidden = ew.shape[0]
        ew = ew.reshape(hidden, half, 3).permute(2, 1, 0).reshape(3 * half, hidden)  # (neighbour, channel)
        self.expand = Affine(*fold_norm(ew, block.expand.bias.detach(), block.expand_norm, out_axis=1))
        self.expand_act = block.expand_act
        tw = block.temporal.weight.detach()[:, 0]  # [hidden, time tap, freq tap]
        dense = torch.zeros(3, 3, hidden, hidden)  # [freq tap, time tap, channel, out]
        for c in range(hidden):
            dense[:, :, c, c] = tw[c].T
        self.temporal = Affine(*fold_norm(dense.reshape(9 * hidden, hidden), block.temporal.bias.detach(),
                                       block.temporal_norm, out_axis=1))
        self.temporal_act = block.temporal_act
        pw = block.project.weight.detach()[:, :, 0, 0].T
        self.project = Affine(*fold_norm(pw, block.project.bias.detach(), block.project_norm, out_axis=1))
        self.gru = block.attention.gru
        self.gate = Affine(block.attention.gate.weight.detach().T, block.attention.gate.bias.detach())
        shuffle = torch.stack([torch.arange(half), half + torch.arange(half)], dim=1).reshape(-1)
        self.register_buffer("shuffle", shuffle)

    def _with_neighbours(self, x: torch.Tensor) -> torch.Tensor:
        t, f = x.shape[0], x.shape[1]
        return torch.index_select(nn.functional.pad(x, (0, 0, 1, 1)), 1, self.neighbours).reshape(t, f, -1)

    def forward(self, x: torch.Tensor, conv_state: torch.Tensor, gru_state: torch.Tensor):
        active, passive = x[..., :self.half], x[..., self.half:]
        h = self.expand_act(self.expand(self._with_neighbours(active)))
        padded = torch.cat([conv_state, h])  # [2d + T, F, hidden]
        d, context = self.dilation, self.context
        taps = torch.cat([padded[:-context], padded[d:-d], padded[context:]], dim=-1)  # oldest first
        h = self.temporal_act(self.temporal(self._with_neighbours(taps)))
        h = self.project(h)
        energy = (h * h).mean(dim=1, keepdim=True)  # [T, 1, half]: time-major, batch 1
        out, gru_state = self.gru(energy, gru_state)
        h = h * torch.sigmoid(self.gate(out))
        shuffled = torch.index_select(torch.cat([h, passive], dim=-1), 2, self.shuffle)
        return shuffled, padded[-context:], gru_state


def _block_diagonal_gru(grus: list[nn.GRU]) -> nn.GRU:
    """Independent GRUs over consecutive slices of the input as one GRU: block-diagonal weights
    keep each group's units seeing only its own inputs and hidden state."""
    sizes_in, sizes_h = [g.input_size for g in grus], [g.hidden_size for g in grus]
    merged = nn.GRU(sum(sizes_in), sum(sizes_h))
    w_ih = torch.zeros(GATES, sum(sizes_h), sum(sizes_in))
    w_hh = torch.zeros(GATES, sum(sizes_h), sum(sizes_h))
    b_ih, b_hh = torch.zeros(GATES, sum(sizes_h)), torch.zeros(GATES, sum(sizes_h))
    i0 = h0 = 0
    for g, ni, nh in zip(grus, sizes_in, sizes_h):
        w_ih[:, h0:h0 + nh, i0:i0 + ni] = g.weight_ih_l0.detach().reshape(GATES, nh, ni)
        w_hh[:, h0:h0 + nh, h0:h0 + nh] = g.weight_hh_l0.detach().reshape(GATES, nh, nh)
        b_ih[:, h0:h0 + nh] = g.bias_ih_l0.detach().reshape(GATES, nh)
        b_hh[:, h0:h0 + nh] = g.bias_hh_l0.detach().reshape(GATES, nh)
        i0, h0 = i0 + ni, h0 + nh
    with torch.no_grad():
        merged.weight_ih_l0.copy_(w_ih.reshape(-1, sum(sizes_in)))
        merged.weight_hh_l0.copy_(w_hh.reshape(-1, sum(sizes_h)))
        merged.bias_ih_l0.copy_(b_ih.reshape(-1))
        merged.bias_hh_l0.copy_(b_hh.reshape(-1))
    return merged


class _DualPath(nn.Module):
    """DualPathGRU on [T, F, C]: the across-frequency GRUs, both groups and both directions, as one
    forward GRU over the bins side by side with the bins reversed (one pass of 33 steps costs less
    than a bidirectional node's two), the along-time ones as one GRU whose batch is the bins."""

    def __init__(self, layer: DualPathGRU):
        super().__init__()
        self.across = _block_diagonal_gru([*layer.across_forward, *layer.across_backward])
        # torch's order of the across outputs is (group, direction, unit); ours (direction, group, unit)
        c = layer.across_fc.in_features
        unit = c // 4
        order = torch.tensor([g * 2 * unit + d * unit + u
                              for d in range(2) for g in range(2) for u in range(unit)])
        self.across_fc = Affine(layer.across_fc.weight.detach().T[order], layer.across_fc.bias.detach())
        self.across_norm = layer.across_norm
        self.along = _block_diagonal_gru(list(layer.along))
        self.along_fc = Affine(layer.along_fc.weight.detach().T, layer.along_fc.bias.detach())
        self.along_norm = layer.along_norm

    def forward(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seq = x.transpose(0, 1)  # [F, T, C]: frequency is the sequence, frames the batch
        both = self.across(torch.cat([seq, seq.flip(0)], dim=-1))[0]  # the backward half reads downwards
        half = both.shape[-1] // 2
        both = torch.cat([both[..., :half], both[..., half:].flip(0)], dim=-1)  # back in bin order
        h = x + self.across_norm(self.across_fc(both.transpose(0, 1)))
        out, state = self.along(h, state)  # time is the sequence, the bins the batch
        return h + self.along_norm(self.along_fc(out)), state


class GTCRNStepGraph(nn.Module):
    def __init__(self, net: GTCRNet):
        super().__init__()
        net = net.eval()
        c = net.config
        if c.window != 2 * c.hop:
            raise ValueError(f"the step graph's overlap-add assumes window = 2 * hop, got {c.window}, "
                             f"{c.hop}")
        self.config, self.hop = c, c.hop
        self.hops_per_frame = -(-c.fft // c.hop)
        self.history = (self.hops_per_frame - 1) * c.hop
        self.fft, self.window, self.low_bins = c.fft, c.window, c.low_bins
        w_analysis, w_synthesis = net.windows()
        self.register_buffer("w_analysis", w_analysis.float())
        self.register_buffer("w_synthesis", w_synthesis.float())
        self.register_buffer("erb_merge", net.erb_merge.detach().T.clone())  # [bands, high bins]
        self.register_buffer("erb_split", net.erb_split.detach().T.clone())  # [high bins, bands]
        width = c.low_bins + c.erb_bands
        self.merged_width = width
        first = _FrequencyConv(net.encoder_convs[0], width, neighbours=True, padded=True)
        self.encoder_convs = nn.ModuleList([first])
        self.encoder_convs.append(_FrequencyConv(net.encoder_convs[1], self.encoder_convs[0].width_out))
        narrow = self.encoder_convs[1].width_out
        self.encoder_blocks = nn.ModuleList(_TemporalBlock(b, narrow) for b in net.encoder_blocks)
        self.dual_path = nn.ModuleList(_DualPath(d) for d in net.dual_path)
        self.decoder_blocks = nn.ModuleList(_TemporalBlock(b, narrow) for b in net.decoder_blocks)
        self.decoder_convs = nn.ModuleList([_FrequencyConv(net.decoder_convs[0], narrow)])
        self.decoder_convs.append(_FrequencyConv(net.decoder_convs[1], self.decoder_convs[0].width_out))

    def initial_states(self) -> list[torch.Tensor]:
        c, w = self.config, self.config.rnn_width
        blocks = [s for b in [*self.encoder_blocks, *self.decoder_blocks]
                  for s in (torch.zeros(b.context, w, c.channels), torch.zeros(1, 1, c.channels))]
        # one tensor per state: the exporter makes a single graph input of two that are one object
        dual = [torch.zeros(1, w, c.channels) for _ in self.dual_path]
        return [torch.zeros(self.history), *blocks, *dual, torch.zeros(1, self.hop)]

    def forward(self, audio: torch.Tensor, *states: torch.Tensor):
        history, *inner, tail = states
        hop, reach = self.hop, self.hops_per_frame - 1
        x = torch.cat([history, audio])
        hops = x.reshape(-1, hop)
        frames = torch.cat([hops[k: k - reach] for k in range(reach)] + [hops[reach:]], dim=1)  # oldest first
        frames = frames[:, frames.shape[1] - self.fft:]
        spectrum = torch.view_as_real(torch.fft.rfft(frames * self.w_analysis, dim=-1))  # [T, bins, 2]
        re, im = spectrum[..., 0], spectrum[..., 1]
        magnitude = torch.sqrt(re * re + im * im + 1e-12)
        features = torch.stack([magnitude, re, im], dim=-1)  # [T, bins, 3]: channels last
        low = self.low_bins
        merged = torch.cat([features[:, :low], self.erb_merge @ features[:, low:]], dim=1)
        h = nn.functional.pad(merged, (0, 0, 1, 0))  # a zero bin in front, where padding taps point
        skips = []
        for conv in self.encoder_convs:
            h = conv(h)
            skips.append(h)
        n_blocks = len(self.encoder_blocks) + len(self.decoder_blocks)
        block_states, dual_states = inner[:2 * n_blocks], inner[2 * n_blocks:]
        new_blocks, new_dual = [], []
        for i, block in enumerate(self.encoder_blocks):
            h, conv_state, gru_state = block(h, block_states[2 * i], block_states[2 * i + 1])
            skips.append(h)
            new_blocks += [conv_state, gru_state]
        for layer, state in zip(self.dual_path, dual_states):
            h, state = layer(h, state)
            new_dual.append(state)
        for i, block in enumerate(self.decoder_blocks, start=len(self.encoder_blocks)):
            h, conv_state, gru_state = block(h + skips.pop(), block_states[2 * i], block_states[2 * i + 1])
            new_blocks += [conv_state, gru_state]
        for conv in self.decoder_convs:
            h = conv(h + skips.pop())
        mask = torch.cat([h[:, :low], self.erb_split @ h[:, low:]], dim=1)  # [T, bins, 2]
        mask_re, mask_im = mask[..., 0], mask[..., 1]
        masked = torch.complex(re * mask_re - im * mask_im, im * mask_re + re * mask_im)
        frames = torch.fft.irfft(masked, n=self.fft, dim=-1)[:, self.fft - self.window:]  # the frame's end
        synthesised = frames * self.w_synthesis
        tails = torch.cat([tail, synthesised[:, hop:]])
        clean = (synthesised[:, :hop] + tails[:-1]).reshape(-1)
        return (clean, x[-self.history:], *new_blocks, *new_dual, tails[-1:])
