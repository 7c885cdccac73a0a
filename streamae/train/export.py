"""Export a trained DenoiserNet to the two ONNX graphs the runtime ships.

- `NAME.onnx`: whole signal, audio [B, N] (N a multiple of hop) -> clean [B, N], time-aligned.
- `NAME.step.onnx`: one streaming step, audio [B, T*hop] + states -> clean + states.

Both carry the model's metadata (`streamae.*` keys) so the runtime needs no side files.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from ..denoiser import step_graph_path
from .model import DenoiserNet

OPSET = 18


class _StepGraph(nn.Module):
    def __init__(self, net: DenoiserNet):
        super().__init__()
        self.net = net

    def forward(self, audio: torch.Tensor, *states: torch.Tensor):
        clean, new_states, _ = self.net.step(audio, list(states))
        return (clean, *new_states)


def export_denoiser(net: DenoiserNet, path: str | Path, metadata: dict) -> tuple[Path, Path]:
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
        states = net.initial_states(2)
        state_names = [f"state_{i}" for i in range(len(states))]
        state_dims = [{0: batch} for _ in states]
        prog = torch.onnx.export(
            _StepGraph(net), (example, *states), dynamo=True, external_data=False,
            opset_version=OPSET, input_names=["audio", *state_names],
            output_names=["clean", *[f"{n}_out" for n in state_names]],
            dynamic_shapes=({0: batch, 1: frames * hop}, tuple(state_dims)), verbose=False,
        )
        step_path = step_graph_path(path)
        _save(prog, step_path, meta)

        prog = torch.onnx.export(
            net, (example,), dynamo=True, external_data=False, opset_version=OPSET,
            input_names=["audio"], output_names=["clean"],
            dynamic_shapes=({0: batch, 1: frames * hop},), verbose=False,
        )
        _save(prog, path, meta)
    return path, step_path


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
