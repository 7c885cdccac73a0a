"""Interpolate between a model and its fine-tuned descendant: (1 - alpha) * start + alpha * tuned.

A fine-tune that gains on the dev mix while losing on everything else (the README example, white
noise, the real VCTK pairs) has drifted towards its training distribution. Taking a point on the
straight line between the start and the end of the fine-tune often keeps most of the gain and
little of the drift (WiSE-FT, Wortsman et al. 2022). Both must come from the same weights; a
smaller start (narrower GRU, no deep filter) is grown first with the seed the training used,
which reproduces the tuned run's own starting point exactly (streamae/train/grow.py).

    python scripts/research/interpolate_weights.py models/denoiser-v2.pt runs/x/checkpoint.pt \
        --alpha 0.5 -o runs/x/half.pt
    python scripts/release/export_denoiser.py runs/x/half.pt runs/x/half.onnx --dev-speech ... --dev-noise ...
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from streamae.train.grow import interpolate
from streamae.train.loop import save_checkpoint


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
    start, tuned = (
        torch.load(path, map_location="cpu", weights_only=False) for path in (args.start, args.tuned)
    )
    save_checkpoint(interpolate(start, tuned, args.alpha, args.seed), Path(args.output))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
