"""Clean audio files: any format and rate in, same format, rate, channels and length out.

Files are streamed in blocks through the same stream the live path uses, so memory stays
flat for long recordings and the output is time-aligned with the input (the model's
latency is dropped from the front and flushed from the back).
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import AtomicAudioWriter, open_input, output_format, read_blocks
from .denoiser import Denoiser
from .errors import StreamaeError

BLOCK_SECONDS = 10.0


@dataclass
class FileResult:
    source: Path
    target: Path
    audio_seconds: float
    elapsed_seconds: float


def denoise_file(denoiser: Denoiser, source: str | Path, target: str | Path, overwrite: bool = False) -> FileResult:
    source, target = Path(source), Path(target)
    check_target(source, target, overwrite)
    started = time.perf_counter()
    with open_input(source) as f:
        fmt, subtype = output_format(target, like=f)
        stream = denoiser.stream(f.samplerate, channels=f.channels)
        to_skip = stream.latency_samples
        with AtomicAudioWriter(target, f.samplerate, f.channels, fmt, subtype) as out:
            for block in read_blocks(f, int(BLOCK_SECONDS * f.samplerate)):
                to_skip = _write_after(out, stream.process(block), to_skip)
            _write_after(out, np.atleast_2d(stream.flush()), to_skip)
        seconds = f.frames / f.samplerate
    return FileResult(source, target, seconds, time.perf_counter() - started)


def _write_after(out: AtomicAudioWriter, y: np.ndarray, to_skip: int) -> int:
    """Write `y` minus its first `to_skip` samples; return how many are still to skip."""
    skip = min(to_skip, y.shape[-1])
    if y.shape[-1] > skip:
        out.write(y[:, skip:])
    return to_skip - skip


def check_target(source: Path, target: Path, overwrite: bool) -> None:
    if target.is_dir():
        raise StreamaeError("is a directory, expected an output file path", target)
    if target.exists():
        if not overwrite:
            same = source.exists() and os.path.samefile(source, target)
            raise StreamaeError("is the input file; pass --overwrite to replace it" if same
                                else "already exists; pass --overwrite to replace it", target)


def add_parser(sub) -> None:
    from .cli import add_model_options

    p = sub.add_parser("denoise", help="clean an audio file", description="Clean an audio file: WAV/FLAC/OGG/MP3, "
                       "any rate and channel count; the output keeps rate, channels, length and timing.")
    p.add_argument("input", help="audio file to clean")
    p.add_argument("-o", "--output", required=True, help="output file; its extension picks the format")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output (also OUTPUT == INPUT)")
    add_model_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from .cli import load_denoiser

    denoiser = load_denoiser(args)
    result = denoise_file(denoiser, args.input, args.output, overwrite=args.overwrite)
    speed = result.audio_seconds / max(result.elapsed_seconds, 1e-9)
    print(f"wrote {result.target} ({result.audio_seconds:.1f} s of audio in {result.elapsed_seconds:.2f} s, "
          f"{speed:.0f}x real time; model latency {denoiser.latency_samples} samples = "
          f"{1000 * denoiser.latency_samples / denoiser.sample_rate:.1f} ms at {denoiser.sample_rate} Hz)")
    return 0
