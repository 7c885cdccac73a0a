"""Interpolate between a model and its fine-tuned descendant: (1 - alpha) * start + alpha * tuned.

A fine-tune that gains on the dev mix while losing on everything else (the README example, white
noise, the real VCTK pairs) has drifted towards its training distribution. Taking a point on the
straight line between the start and the end of the fine-tune often keeps most of the gain and
little of the drift (WiSE-FT, Wortsman et al. 2022). Both must come from the same weights; a
smaller start (narrower GRU, no deep filter) is grown first with the seed the training used,
which reproduces the tuned run's own starting point exactly (streamae/train/grow.py).

    python scripts/interpolate_weights.py models/denoiser-v2.pt runs/x/checkpoint.pt \
        --alpha 0.5 -o runs/x/half.pt
    python scripts/export_denoiser.py runs/x/half.pt runs/x/half.onnx --dev-speech ... --dev-noise ...
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from streamae.train.config import DenoiserConfig  # noqa: E402
from streamae.train.loop import save_checkpoint  # noqa: E402
from streamae.train.grow import can_grow, grow  # noqa: E402


def interpolate(start: dict, tuned: dict, alpha: float, seed: int = 0) -> dict:
    """Two checkpoints ({"model", "config", ...}) -> a checkpoint of the tuned one's shape."""
    start_config, tuned_config = DenoiserConfig.from_dict(start["config"]), DenoiserConfig.from_dict(tuned["config"])
    weights = start["model"]
    if start_config != tuned_config:
        if not can_grow(start_config, tuned_config):
            raise SystemExit(f"the tuned model is not a grown start: {start_config} vs {tuned_config}")
        weights = grow(weights, start_config, tuned_config, seed=seed)
    mixed = {}
    for name, value in tuned["model"].items():
        if value.is_floating_point():
            mixed[name] = torch.lerp(weights[name].to(value.dtype), value, alpha)
        else:  # BatchNorm's batch counter
            mixed[name] = value.clone()
    return {"model": mixed, "config": tuned["config"], "step": tuned.get("step", 0),
            "elapsed": tuned.get("elapsed", 0.0)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("start", help="the weights the fine-tune began from (.pt with model and config)")
    p.add_argument("tuned", help="the fine-tune's checkpoint")
    p.add_argument("--alpha", type=float, required=True, help="0: start, 1: tuned")
    p.add_argument("--seed", type=int, default=0, help="the fine-tune's --seed (only matters when growing)")
    p.add_argument("-o", "--output", required=True)
    args = p.parse_args()
    if not 0.0 <= args.alpha <= 1.0:
        raise SystemExit("--alpha must lie in [0, 1]")
    load = lambda path: torch.load(path, map_location="cpu", weights_only=False)  # noqa: E731
    save_checkpoint(interpolate(load(args.start), load(args.tuned), args.alpha, args.seed), Path(args.output))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
