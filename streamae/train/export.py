"""Export a trained DenoiserNet to the two ONNX graphs the runtime ships.

- `NAME.onnx`: whole signal, audio [B, N] (N a multiple of hop) -> clean [B, N], time-aligned.
- `NAME.step.onnx`: one streaming step of one channel, audio [T*hop] + states -> clean + states.

Both carry the model's metadata (`streamae.*` keys) so the runtime needs no side files.
"""
from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import onnx
import torch
from onnxscript import opset18 as op
from torch import nn

from ..denoiser import step_graph_path
from .gtcrn import GTCRNet
from .gtcrn_step import Affine, GTCRNStepGraph, fold_norm
from .model import DenoiserNet, add_to_low_bins, deep_filter, low_band_history, phase_advance

OPSET = 18


class _StepGraph(nn.Module):
    """`DenoiserNet.step` for one channel, laid out for onnxruntime's cost model at 10 ms chunks.

    A live 10 ms chunk is two frames, so the step graph's cost is per node, not arithmetic:
    onnxruntime's Conv node costs about 9 us there whatever its size, a MatMul about 1 us, and a
    2-D MatMul + Add is fused into one Gemm. So the graph has no batch axis and runs time-major
    [T, C] throughout, BatchNorm folded into the weights: the analysis frames are a reshape of the
    input into hops, side by side, times the analysis basis; 1x1 convs are Gemms; a dilated conv
    is its taps (slices of state + input) side by side and one Gemm; the transposed-conv decoder
    is a MatMul plus overlap-add; GRU layers are ONNX GRU nodes. Same arithmetic as `step`; the
    runtime calls it per channel.
    """

    def __init__(self, net: DenoiserNet):
        super().__init__()
        c = net.config
        if c.window != 2 * c.hop:
            raise ValueError(
                f"the step graph's overlap-add assumes window = 2 * hop, got {c.window} and {c.hop}"
            )
        self.net = net
        self.hops_per_frame = -(-max(c.window, c.analysis_window) // c.hop)
        self.history = (self.hops_per_frame - 1) * c.hop  # a whole number of hops: at least net.history
        analysis = (
            (net.analysis_basis if net.spectral else net.encoder.weight).detach()[:, 0, :].T
        )  # [frame, code]
        unused = self.hops_per_frame * c.hop - analysis.shape[0]  # oldest samples of the widened frame
        self.register_buffer("analysis", torch.cat([analysis.new_zeros(unused, analysis.shape[1]), analysis]))
        self.features = Affine(*_fold_norm(net.features[0], net.features[1]))
        if c.uses_phase():  # added before the BatchNorm, so scaled by it too (its shift is in `features`)
            self.phase_features = Affine(*_fold_norm(net.phase_features, net.features[1], shift=False))
        if c.deep_filter:
            self.taps = Affine(*_fold_norm(net.taps))
        self.dilations = [b.conv.dilation[0] for b in net.blocks]
        self.gru = _ExportedGRU(net.gru) if c.recurrent else None
        self.convs = nn.ModuleList(Affine(*_fold_norm(b.conv, b.norm)) for b in net.blocks)
        self.projections = nn.ModuleList(Affine(*_fold_norm(b.project)) for b in net.blocks)
        self.mask = Affine(*_fold_norm(net.mask))
        synthesis = net.synthesis_basis if net.spectral else net.decoder.weight
        self.register_buffer("synthesis", synthesis.detach()[:, 0, :].clone())  # [code, window]

    def initial_states(self) -> list[torch.Tensor]:
        net, c = self.net, self.net.config
        blocks = [torch.zeros(b.context, c.bottleneck) for b in net.blocks]
        if c.recurrent:
            blocks.append(torch.zeros(c.recurrent, c.hidden))
        if c.uses_phase():
            blocks.append(torch.zeros(c.past_frames(), 2 * c.low_band_bins()))
        return [torch.zeros(self.history), *blocks, torch.zeros(1, net.overlap)]

    def forward(self, audio: torch.Tensor, *states: torch.Tensor):
        net, hop, reach = self.net, self.net.config.hop, self.hops_per_frame - 1
        enc_state, *block_states, dec_state = states
        x = torch.cat([enc_state, audio])
        hops = x.reshape(-1, hop)
        frames = torch.cat(
            [hops[k : k - reach] for k in range(reach)] + [hops[reach:]], dim=1
        )  # [T, frame], oldest first
        code, log_code = net.activate(frames @ self.analysis, dim=1)  # [T, channels]
        h = self.features(log_code)
        if net.config.uses_phase():
            *block_states, past = block_states
            low, new_past = low_band_history(past, code, net.config.low_band_bins(), time_dim=0, dim=1)
            h = h + self.phase_features(phase_advance(low, past.shape[0] - 1, time_dim=0, dim=1))
        new_block_states = []
        if self.gru is not None:  # [T, batch 1, C]
            out, hidden = self.gru(h[:, None, :], block_states[0][:, None, :])
            h = out[:, 0, :]
            new_block_states.append(hidden[:, 0, :])
        for dilation, conv, project, state in zip(self.dilations, self.convs, self.projections, block_states):
            padded = torch.cat([state, h])
            context = state.shape[0]  # static: (kernel - 1) * dilation
            taps = [padded[k: k - context] for k in range(0, context, dilation)] + [h]  # oldest first
            h = h + project(torch.relu(conv(torch.cat(taps, dim=1))))
            new_block_states.append(padded[-context:])
        mask = torch.sigmoid(self.mask(h))
        if net.spectral:
            mask = torch.cat([mask, mask], dim=1)  # real and imaginary parts alike
        masked = code * mask
        if net.config.deep_filter:
            masked = add_to_low_bins(
                masked, deep_filter(low, torch.tanh(self.taps(h)), time_dim=0, dim=1), dim=1
            )
        if net.config.uses_phase():
            new_block_states.append(new_past)
        synthesised = masked @ self.synthesis  # [T, window]
        tails = torch.cat(
            [dec_state, synthesised[:, hop:]]
        )  # second halves, the previous step's last one first
        clean = (synthesised[:, :hop] + tails[:-1]).reshape(-1)
        return (clean, x[-self.history:], *new_block_states, tails[-1:])


@torch.no_grad()
def _fold_norm(conv: nn.Conv1d, norm: nn.BatchNorm1d | None = None,
               shift: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Conv1d [+ eval-mode BatchNorm1d] -> (weight [kernel * in, out], bias [out]), taps oldest first."""
    weight, bias = fold_norm(conv.weight, conv.bias, norm, shift=shift)
    out, inp, kernel = weight.shape
    return weight.permute(2, 1, 0).reshape(kernel * inp, out).clone(), bias.clone()


@torch.library.custom_op("streamae::gru", mutates_args=())
def _gru(x: torch.Tensor, h0: torch.Tensor, weights: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """A time-major, biased, forward GRU, as one op the exporter does not look inside.

    Traced as aten.gru, torch unrolls it over the example's frames, fixing their number in the
    graph's shapes; as this op it keeps a symbolic length and becomes ONNX GRU nodes."""
    out, h = torch.gru(x, h0, weights, True, len(weights) // 4, 0.0, False, False, False)
    return out.clone(), h.clone()


@_gru.register_fake
def _(x, h0, weights):
    return x.new_empty(x.shape[0], x.shape[1], h0.shape[2]), h0.new_empty(h0.shape)


class _ExportedGRU(nn.Module):
    """Stands in for an nn.GRU (same weights, same call) while exporting; called without a state,
    it runs from zero states without a state input (as the across-frequency GRUs do)."""

    def __init__(self, gru: nn.GRU):
        super().__init__()
        if not gru.bias or gru.bidirectional or gru.batch_first:
            raise NotImplementedError("the exporter takes time-major, forward, biased GRUs only")
        self.gru = gru

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None):
        if h0 is None:
            return (_gru_from_zero(x, list(self.gru._flat_weights)),)
        return _gru(x, h0, list(self.gru._flat_weights))


@torch.library.custom_op("streamae::gru_from_zero", mutates_args=())
def _gru_from_zero(x: torch.Tensor, weights: list[torch.Tensor]) -> torch.Tensor:
    """A time-major, biased, one-layer forward GRU from zero states -> [T, B, H], as one op (see
    _gru), which becomes one ONNX GRU node with no state input."""
    h0 = x.new_zeros(1, x.shape[1], weights[1].shape[1])
    return torch.gru(x, h0, weights, True, 1, 0.0, False, False, False)[0].clone()


@_gru_from_zero.register_fake
def _(x, weights):
    return x.new_empty(x.shape[0], x.shape[1], weights[1].shape[1])


def _gru_as_onnx(x, h0, weights):
    """streamae::gru -> one ONNX GRU node per layer."""
    layers = len(weights) // 4
    finals = []
    for layer in range(layers):
        w_ih, w_hh, b_ih, b_hh = weights[4 * layer: 4 * layer + 4]
        y, h = op.GRU(x, op.Unsqueeze(_zrn(w_ih), [0]), op.Unsqueeze(_zrn(w_hh), [0]),
                      op.Unsqueeze(op.Concat(_zrn(b_ih), _zrn(b_hh), axis=0), [0]), None,
                      h0 if layers == 1 else op.Slice(h0, [layer], [layer + 1], [0]),
                      hidden_size=h0.shape[2], linear_before_reset=1)  # torch applies the reset after R
        x = op.Squeeze(y, [1])  # [T, directions=1, B, H] -> [T, B, H]
        finals.append(h)
    return x, finals[0] if layers == 1 else op.Concat(*finals, axis=0)


def _gru_from_zero_as_onnx(x, weights):
    """streamae::gru_from_zero -> one ONNX GRU node without a state input, its output [T, B, H]."""
    w_ih, w_hh, b_ih, b_hh = weights
    y, _ = op.GRU(x, op.Unsqueeze(_zrn(w_ih), [0]), op.Unsqueeze(_zrn(w_hh), [0]),
                  op.Unsqueeze(op.Concat(_zrn(b_ih), _zrn(b_hh), axis=0), [0]),
                  hidden_size=w_hh.shape[1], linear_before_reset=1)  # [T, 1, B, H]
    return op.Squeeze(y, [1])


def _zrn(stacked):
    """torch stacks a GRU's gates r, z, n; ONNX expects z, r, n."""
    r, z, n = op.Split(stacked, num_outputs=3, axis=0)
    return op.Concat(z, r, n, axis=0)


def _with_exported_grus(net: nn.Module) -> nn.Module:
    """A copy of `net` whose nn.GRU layers are export stand-ins (the caller's net is untouched)."""
    net = copy.deepcopy(net)
    for name, module in list(net.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.GRU):
                setattr(module, child_name, _ExportedGRU(child))
    return net


def export_denoiser(net: DenoiserNet | GTCRNet, path: str | Path, metadata: dict) -> tuple[Path, Path]:
    """Write the whole-signal graph to `path` and the step graph beside it."""
    net = net.eval().cpu()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    hop = net.config.hop
    batch = torch.export.Dim("batch", min=1, max=1024)
    frames = torch.export.Dim("frames", min=1, max=1_000_000)
    example = torch.zeros(2, 4 * hop)  # batch 2: a size-1 example dimension can get specialised to 1
    meta = {
        "streamae.kind": "denoiser",
        "streamae.config": json.dumps(net.config.to_dict()),
        "streamae.delay": str(net.overlap),
        **{f"streamae.{k}": v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()},
    }

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gtcrn = isinstance(net, GTCRNet)
        step = (_with_exported_grus(GTCRNStepGraph(net)) if gtcrn else _StepGraph(net)).eval()
        states = step.initial_states()
        state_names = [f"state_{i}" for i in range(len(states))]
        prog = torch.onnx.export(
            step, (example[0], *states), dynamo=True, external_data=False,
            opset_version=OPSET, input_names=["audio", *state_names],
            output_names=["clean", *[f"{n}_out" for n in state_names]],
            dynamic_shapes=({0: frames * hop}, tuple({} for _ in states)), verbose=False,
            custom_translation_table=_TRANSLATIONS,
        )
        step_path = step_graph_path(path)
        _save(prog, step_path, meta)

        whole = _with_exported_grus(net)
        prog = torch.onnx.export(
            whole, (example,), dynamo=True, external_data=False, opset_version=OPSET,
            input_names=["audio"], output_names=["clean"],
            dynamic_shapes=({0: batch, 1: frames * hop},), verbose=False,
            custom_translation_table=_TRANSLATIONS,
        )
        _save(prog, path, meta)
    return path, step_path


_TRANSLATIONS = {torch.ops.streamae.gru.default: _gru_as_onnx,
                 torch.ops.streamae.gru_from_zero.default: _gru_from_zero_as_onnx}


def _save(program, path: Path, meta: dict) -> None:
    model = program.model_proto
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    tmp = path.with_name(path.name + ".tmp")
    onnx.save(model, tmp)
    tmp.replace(path)


@torch.no_grad()
def code_sparsity(net: DenoiserNet, noisy: torch.Tensor, level_dbfs: float = -25.0) -> dict:
    """How sparse the code (masked encoder output, what the decoder sees) really is.

    Inputs are first scaled to `level_dbfs` RMS, since the absolute figure depends on level.
    The learned front end's ReLU makes exact zeros, so `zero_fraction` needs no threshold; the
    spectral front end's masked magnitudes are never exactly zero, and `below_1pct_of_frame_max`
    is the measure that compares the two.
    """
    net = net.eval()
    x = noisy * (10 ** (level_dbfs / 20) / noisy.pow(2).mean(-1, keepdim=True).sqrt().clamp(min=1e-8))
    _, code = net.forward_with_code(x)
    frame_max = code.amax(dim=1, keepdim=True)
    return {
        "level_dbfs": level_dbfs,
        "zero_fraction": round(float((code == 0).float().mean()), 4),
        "below_1pct_of_frame_max": round(float((code < 0.01 * frame_max).float().mean()), 4),
        "mean_abs_code_over_rms": round(float(code.abs().mean() / x.pow(2).mean().sqrt()), 4),
    }
