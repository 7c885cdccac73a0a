"""Checks of the training options, shared by the trainers (torch-free). The options themselves
are declared by the command layer, `streamae.cli.train`."""
from __future__ import annotations

import argparse

from ..errors import StreamaeError
from .config import DenoiserConfig


def check_budget(minutes: float, steps: int) -> None:
    """Training stops at whichever budget comes first; with neither it would never stop."""
    if minutes <= 0 and steps <= 0:
        raise StreamaeError("no training budget: give --minutes or --steps above 0")


def check_loss_weights(args: argparse.Namespace) -> None:
    """A negative weight would reward the very error its term measures."""
    for option in ("stft_weight", "suppression_weight", "stoi_weight", "sparsity"):
        if getattr(args, option) < 0:
            raise StreamaeError(f"--{option.replace('_', '-')} must be 0 or more")


def check_clean_fraction(fraction: float | None) -> None:
    if fraction is not None and not 0.0 <= fraction <= 1.0:
        raise StreamaeError(f"--clean-fraction is a share of the examples, from 0 to 1; got {fraction:g}")


def check_shape(deep_filter: int, phase_input: bool, analysis_window: int) -> None:
    """The phase input and the deep filter work on the spectral front end's bins; a filter of one tap
    would be a complex mask, which the real mask and a 2-tap filter already cover."""
    if deep_filter < 0 or deep_filter == 1:
        raise StreamaeError("--deep-filter needs at least 2 taps (0: none)")
    if (deep_filter or phase_input) and analysis_window <= DenoiserConfig.window:
        raise StreamaeError(f"--deep-filter and --phase-input need the spectral front end (--analysis-window "
                            f"above {DenoiserConfig.window}, e.g. 512)")
