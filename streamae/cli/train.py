"""`streamae train denoiser`: the training options. Nothing here imports `streamae.train` (or
torch) until a training run starts, so every other command stays light; options whose default is
a model hyper-parameter take it from `DenoiserConfig` then."""
from __future__ import annotations

import argparse

from ..errors import StreamaeError
from .common import run_trainer

MAX_STOI_BANDS = 18  # one-third-octave bands from 150 Hz up to 8 kHz
SHAPE_OPTIONS = ("bottleneck", "hidden", "code", "analysis_window", "recurrent", "deep_filter", "dilations")


def register(commands) -> None:
    p = commands.add_parser("train", help="train a model (needs the 'train' extra: torch)")
    p.set_defaults(run=lambda args: p.print_help() or 2)
    models = p.add_subparsers(metavar="MODEL")
    t = models.add_parser("denoiser", help="train the denoising autoencoder")
    add_denoiser_training_options(t)
    t.set_defaults(run=run_denoiser)


def run_denoiser(args: argparse.Namespace) -> int:
    if args.export and not args.export.endswith(".onnx"):  # --export NAME writes NAME.onnx, as its help says
        args.export += ".onnx"
    try:
        from ..train.config import STOI_BANDS, DenoiserConfig
    except ImportError:  # the trainer's import says what to install
        return run_trainer("streamae.train.train_denoiser", args)
    defaults = DenoiserConfig()
    for name in SHAPE_OPTIONS:
        if getattr(args, name) is None:
            setattr(args, name, getattr(defaults, name))
    args.dilations = list(args.dilations)
    if args.stoi_bands is None:
        args.stoi_bands = STOI_BANDS
    if not STOI_BANDS <= args.stoi_bands <= MAX_STOI_BANDS:
        raise StreamaeError(f"--stoi-bands must be {STOI_BANDS} to {MAX_STOI_BANDS}")
    return run_trainer("streamae.train.train_denoiser", args)


def add_denoiser_training_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--speech", nargs="+", required=True, help="clean speech files or folders")
    p.add_argument("--noise", nargs="+", required=True, help="noise files or folders")
    p.add_argument("--rir", nargs="*", default=[], help="room impulse responses (optional)")
    p.add_argument("--dev-speech", nargs="*", default=[], help="held-out speech for validation")
    p.add_argument("--dev-noise", nargs="*", default=[], help="held-out noise for validation")
    p.add_argument("--run-dir", default="runs/denoiser", help="checkpoints and logs; resumed if present")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    p.add_argument(
        "--init",
        default=None,
        help="start from these weights (a checkpoint or models/*.pt), e.g. to "
        "fine-tune the shipped model (a larger --hidden widens its GRU layers, and --phase-input or "
        "--deep-filter add theirs, keeping what the model does); "
        "ignored when resuming",
    )
    p.add_argument("--minutes", type=float, default=30.0, help="training time budget (wall clock)")
    p.add_argument("--steps", type=int, default=0, help="step budget (0: time only)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seconds", type=float, default=4.0, help="crop length")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--snr", type=float, nargs=2, default=(-5.0, 25.0), metavar=("LOW", "HIGH"),
                   help="training SNR range in dB (uniform)")
    p.add_argument("--stft-weight", type=float, default=5.0)
    p.add_argument("--suppression-weight", type=float, default=0.0,
                   help="weight of the over-suppression penalty (speech the estimate lost; 0: off)")
    p.add_argument("--stoi-weight", type=float, default=0.0,
                   help="weight of the intelligibility term, 1 - a differentiable STOI (0: off)")
    p.add_argument("--stoi-bands", type=int, default=None, metavar="BANDS",
                   help="one-third-octave bands of that term: STOI's 15 (the default, to 4.3 kHz) up to "
                        f"{MAX_STOI_BANDS} (to 8 kHz)")
    p.add_argument(
        "--sparsity", type=float, default=0.05, help="L1 weight on the code (relative to input RMS)"
    )
    p.add_argument("--bottleneck", type=int, default=None)
    p.add_argument("--hidden", type=int, default=None)
    p.add_argument("--code", type=int, default=None)
    p.add_argument("--analysis-window", type=int, default=None,
                   help="spectral front end: asymmetric STFT analysis window in samples, longer than the "
                        "10 ms synthesis window (e.g. 512); 0 (the default): learned filterbank (v1)")
    p.add_argument("--recurrent", type=int, default=None,
                   help="GRU layers (width --hidden) instead of the dilated conv blocks; 0 (the default): "
                        "conv blocks (v1)")
    p.add_argument("--phase-input", action="store_true",
                   help="spectral front end: the mask network also sees each bin's phase advance below 4 kHz")
    p.add_argument(
        "--deep-filter",
        type=int,
        default=None,
        metavar="TAPS",
        help="spectral front end: add a complex filter of TAPS (>= 2) frames to the mask below 4 kHz "
        "(implies --phase-input); 0 (the default): the mask alone",
    )
    p.add_argument("--dilations", type=int, nargs="+", default=None)
    p.add_argument("--clean-fraction", type=float, default=None,
                   help="share of training examples with no noise at all, whose target is the input: "
                        "teaches the model to leave clean speech alone (default: MixConfig.p_clean, 0.05)")
    p.add_argument("--window", type=int, default=0,
                   help="with --init from a GTCRN: its synthesis window in samples (latency window - 1; "
                        "shorter than 512 makes the analysis window asymmetric); 0: the init's")
    p.add_argument("--hop", type=int, default=0,
                   help="with --init from a GTCRN: its hop (window / 2); 0: the init's")
    p.add_argument("--temporal-dilations", type=int, nargs="+", default=None,
                   help="with --init from a GTCRN: its temporal blocks' dilations in frames "
                        "(default: the init's)")
    p.add_argument("--device", default="auto", help="where training runs: auto, cpu or cuda")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: all cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument(
        "--stop-after",
        type=float,
        default=0.0,
        metavar="MINUTES",
        help="end this sitting after MINUTES, checkpointed, without ending the schedule: the same command "
        "resumes it (for runs longer than one sitting; SIGTERM and Ctrl-C stop the same way)",
    )
    p.add_argument("--export", default=None, help="write NAME.onnx and NAME.step.onnx when done")
