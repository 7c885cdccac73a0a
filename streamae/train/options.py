"""Command-line options for `streamae train denoiser` (torch-free, so `streamae --help` stays light)."""
from __future__ import annotations

import argparse

from ..errors import StreamaeError
from .config import STOI_BANDS, DenoiserConfig


def check_budget(minutes: float, steps: int) -> None:
    """Training stops at whichever budget comes first; with neither it would never stop."""
    if minutes <= 0 and steps <= 0:
        raise StreamaeError("no training budget: give --minutes or --steps above 0")


def check_loss_weights(args: argparse.Namespace) -> None:
    """A negative weight would reward the very error its term measures."""
    for option in ("stft_weight", "suppression_weight", "stoi_weight", "sparsity"):
        if getattr(args, option) < 0:
            raise StreamaeError(f"--{option.replace('_', '-')} must be 0 or more")


def check_shape(deep_filter: int, phase_input: bool, analysis_window: int) -> None:
    """The phase input and the deep filter work on the spectral front end's bins; a filter of one tap
    would be a complex mask, which the real mask and a 2-tap filter already cover."""
    if deep_filter < 0 or deep_filter == 1:
        raise StreamaeError("--deep-filter needs at least 2 taps (0: none)")
    if (deep_filter or phase_input) and analysis_window <= DenoiserConfig.window:
        raise StreamaeError(f"--deep-filter and --phase-input need the spectral front end (--analysis-window "
                            f"above {DenoiserConfig.window}, e.g. 512)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--speech", nargs="+", required=True, help="clean speech files or folders")
    p.add_argument("--noise", nargs="+", required=True, help="noise files or folders")
    p.add_argument("--rir", nargs="*", default=[], help="room impulse responses (optional)")
    p.add_argument("--dev-speech", nargs="*", default=[], help="held-out speech for validation")
    p.add_argument("--dev-noise", nargs="*", default=[], help="held-out noise for validation")
    p.add_argument("--run-dir", default="runs/denoiser", help="checkpoints and logs; resumed if present")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--init", default=None, help="start from these weights (a checkpoint or models/*.pt), e.g. to "
                   "fine-tune the shipped model (a larger --hidden widens its GRU layers, and --phase-input or "
                   "--deep-filter add theirs, keeping what the model does); "
                   "ignored when resuming")
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
    p.add_argument("--stoi-bands", type=int, default=STOI_BANDS, choices=range(STOI_BANDS, 19), metavar="{15..18}",
                   help="one-third-octave bands of that term: 15 is STOI's (to 4.3 kHz), 18 reaches 8 kHz")
    p.add_argument("--sparsity", type=float, default=0.05, help="L1 weight on the code (relative to input RMS)")
    p.add_argument("--bottleneck", type=int, default=DenoiserConfig.bottleneck)
    p.add_argument("--hidden", type=int, default=DenoiserConfig.hidden)
    p.add_argument("--code", type=int, default=DenoiserConfig.code)
    p.add_argument("--analysis-window", type=int, default=DenoiserConfig.analysis_window,
                   help="spectral front end: asymmetric STFT analysis window in samples, longer than the "
                        "10 ms synthesis window (e.g. 512); 0: learned filterbank (v1)")
    p.add_argument("--recurrent", type=int, default=DenoiserConfig.recurrent,
                   help="GRU layers (width --hidden) instead of the dilated conv blocks; 0: conv blocks (v1)")
    p.add_argument("--phase-input", action="store_true",
                   help="spectral front end: the mask network also sees each bin's phase advance below 4 kHz")
    p.add_argument("--deep-filter", type=int, default=DenoiserConfig.deep_filter, metavar="TAPS",
                   help="spectral front end: add a complex filter of TAPS (>= 2) frames to the mask below 4 kHz "
                        "(implies --phase-input); 0: the mask alone")
    p.add_argument("--dilations", type=int, nargs="+", default=list(DenoiserConfig.dilations))
    p.add_argument("--window", type=int, default=0,
                   help="with --init from a GTCRN: its synthesis window in samples (latency window - 1; "
                        "shorter than 512 makes the analysis window asymmetric); 0: the init's")
    p.add_argument("--hop", type=int, default=0, help="with --init from a GTCRN: its hop (window / 2); 0: the init's")
    p.add_argument("--temporal-dilations", type=int, nargs="+", default=None,
                   help="with --init from a GTCRN: its temporal blocks' dilations in frames (default: the init's)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: all cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument("--stop-after", type=float, default=0.0, metavar="MINUTES",
                   help="end this sitting after MINUTES, checkpointed, without ending the schedule: the same command "
                        "resumes it (for runs longer than one sitting; SIGTERM and Ctrl-C stop the same way)")
    p.add_argument("--export", default=None, help="write NAME.onnx and NAME.step.onnx when done")
