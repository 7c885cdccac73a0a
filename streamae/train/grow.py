"""Grow a trained denoiser into a larger one that computes exactly the same function.

A shape trained to its plateau can only improve with more capacity, but a larger net trained from
scratch spends its first hours relearning what the small one knows. Two ways to grow keep every
old weight:
- wider GRU layers: each new unit gets a fresh random initialisation but all its outgoing weights
  (into the old units' recurrences, the next layer, the mask) start at zero. The new units then
  change nothing at step 0, and gradient flows into them from the first step (the zero weights
  see the new units' non-zero activity), in the spirit of Net2Net (Chen et al. 2016);
- the phase input or a deep filter added (spectral front end): their weights start at zero
  (model.py), so they add nothing until they have learned something.
"""
from __future__ import annotations

import dataclasses

import torch

from ..errors import StreamaeError
from .config import DenoiserConfig
from .model import DenoiserNet

GATES = 3  # PyTorch stacks a GRU's reset, update and new-state rows in this order


def can_grow(old: DenoiserConfig, new: DenoiserConfig) -> bool:
    """Only a GRU's width may grow, and the phase input or a deep filter be added; all else must match."""
    wider = new.hidden > old.hidden and old.recurrent > 0
    filtered = new.deep_filter > 0 and old.deep_filter == 0
    same_rest = dataclasses.replace(new, hidden=old.hidden, deep_filter=old.deep_filter,
                                    phase_input=old.phase_input) == old
    keeps_phase = new.phase_input or not old.phase_input
    return same_rest and keeps_phase and (wider or new.hidden == old.hidden) \
        and (filtered or new.deep_filter == old.deep_filter) and new != old


def grow(old_state: dict[str, torch.Tensor], old: DenoiserConfig, new: DenoiserConfig,
         seed: int = 0) -> dict[str, torch.Tensor]:
    """old_state (a DenoiserNet of config `old`) -> the state of a DenoiserNet of config `new` with
    the same output."""
    if not can_grow(old, new):
        raise ValueError(f"cannot grow {old} into {new}: only a GRU's hidden width may grow, and the phase "
                         "input or a deep filter be added")
    with torch.random.fork_rng():  # seeded, without touching the caller's random stream
        torch.manual_seed(seed)
        state = DenoiserNet(new).state_dict()  # fresh initialisation for the new units and modules
    h = old.hidden
    for name, value in old_state.items():
        target = state[name]
        if value.shape == target.shape:
            target.copy_(value)
        elif name.startswith("gru."):
            columns_are_units = name.startswith("gru.weight_hh") or (
                name.startswith("gru.weight_ih") and not name.endswith("_l0"))
            _copy_gate_blocks(target, value, h, new.hidden, columns_are_units)
        elif name in ("mask.weight", "taps.weight"):  # [outputs, hidden, 1]: what reads the GRU's units
            target.zero_()
            target[:, :h] = value
        else:
            raise ValueError(
                f"unexpected shape change in {name}: {tuple(value.shape)} -> {tuple(target.shape)}"
            )
    return state


def _copy_gate_blocks(target: torch.Tensor, value: torch.Tensor, old_h: int, new_h: int,
                      columns_are_units: bool) -> None:
    """Copy each gate's rows of a GRU weight or bias into the wider one. Where the columns are
    hidden units (recurrent weights, and the input weights of layers above the first), the old
    units' rows get zero weight on the new units, so the old units cannot tell they exist."""
    for g in range(GATES):
        rows, placed = slice(g * old_h, (g + 1) * old_h), slice(g * new_h, g * new_h + old_h)
        if target.dim() == 1:
            target[placed] = value[rows]
            continue
        if columns_are_units:
            target[placed] = 0.0
        target[placed, : value.shape[1]] = value[rows]


def without_deep_filter(ckpt: dict) -> dict:
    """A checkpoint ({"model", "config", ...}) with its deep filter's taps left out and the phase
    input kept: what the taps add can be measured, or a model whose taps add nothing shipped
    without their cost (`scripts/release/export_denoiser.py --drop-deep-filter`)."""
    if not ckpt["config"].get("deep_filter"):
        raise StreamaeError("--drop-deep-filter: this checkpoint has no deep filter")
    model = {k: v for k, v in ckpt["model"].items() if not k.startswith("taps.")}
    return {**ckpt, "model": model, "config": {**ckpt["config"], "deep_filter": 0, "phase_input": True}}


def interpolate(start: dict, tuned: dict, alpha: float, seed: int = 0) -> dict:
    """(1 - alpha) * start + alpha * tuned, weight for weight: two checkpoints ({"model", "config",
    ...}) -> a checkpoint of the tuned one's shape. A smaller start is grown first (`grow`, with the
    seed the fine-tune used), which reproduces the fine-tune's own starting point exactly
    (`scripts/research/interpolate_weights.py`)."""
    start_config, tuned_config = (
        DenoiserConfig.from_dict(start["config"]),
        DenoiserConfig.from_dict(tuned["config"]),
    )
    weights = start["model"]
    if start_config != tuned_config:
        if not can_grow(start_config, tuned_config):
            raise StreamaeError(f"the tuned model is not a grown start: {start_config} vs {tuned_config}")
        weights = grow(weights, start_config, tuned_config, seed=seed)
    mixed = {}
    for name, value in tuned["model"].items():
        if value.is_floating_point():
            mixed[name] = torch.lerp(weights[name].to(value.dtype), value, alpha)
        else:  # BatchNorm's batch counter
            mixed[name] = value.clone()
    return {"model": mixed, "config": tuned["config"], "step": tuned.get("step", 0),
            "elapsed": tuned.get("elapsed", 0.0)}
