"""Export a training checkpoint to the two ONNX graphs (whole signal + streaming step).

    python scripts/release/export_denoiser.py runs/gpu1/small/checkpoint.pt runs/gpu1/small/small.onnx \
        --dev-speech ../shared/data/speech/dev --dev-noise ../shared/data/noise/dev

The dev audio is only used to measure the code's sparsity for the model card.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from streamae import runtime
from streamae.audio import SAMPLE_RATE
from streamae.train.config import config_from_dict
from streamae.train.data import MixConfig, Mixer, load_corpus
from streamae.train.grow import without_deep_filter
from streamae.train.train_denoiser import build_net, export


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("output", help="NAME.onnx; NAME.step.onnx is written beside it")
    p.add_argument("--dev-speech", nargs="+", required=True)
    p.add_argument("--dev-noise", nargs="+", required=True)
    p.add_argument("--training-note", default="", help="free text stored in the training metadata")
    p.add_argument(
        "--training-from", default=None, metavar="MODEL.onnx",
        help="re-export a weights file (models/X.pt) after an exporter change, keeping the training "
        "summary this model's metadata records",
    )
    p.add_argument(
        "--weights-out", default=None, help="also write the weights (no optimizer) here, for --init"
    )
    p.add_argument(
        "--drop-deep-filter",
        action="store_true",
        help="leave the deep filter's taps out, keeping the phase input: to measure what the taps add, "
        "or to ship a model whose taps add nothing without their cost",
    )
    args = p.parse_args()
    ckpt = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    if args.drop_deep_filter:
        ckpt = without_deep_filter(ckpt)
    net = build_net(config_from_dict(ckpt["config"]))
    net.load_state_dict(ckpt["model"])
    mix = MixConfig(snr_low=-5, snr_high=15, p_clean=0, p_reverb=0, p_gap=0, p_second_noise=0, p_synthetic=0)
    probe, _ = Mixer(load_corpus(args.dev_speech, SAMPLE_RATE, 0.5),
                     load_corpus(args.dev_noise, SAMPLE_RATE, 0.2), [],
                     torch.device("cpu"), mix, seed=1234).batch(32)
    if args.training_from:
        training = runtime.metadata(runtime.session(args.training_from))["training"]
    else:
        training = {
            "steps": ckpt["step"],
            "minutes": round(ckpt["elapsed"] / 60, 1),
            "checkpoint": Path(args.checkpoint).name,
        }
    if args.training_note:
        training["note"] = args.training_note
    export(net, probe, args.output, training)
    if args.weights_out:
        torch.save(
            {"model": net.state_dict(), "config": ckpt["config"], "step": ckpt["step"]}, args.weights_out
        )
        print(f"wrote {args.weights_out}")


if __name__ == "__main__":
    main()
