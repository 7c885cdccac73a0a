"""The `streamae` command: a thin layer over the Python API; one sub-command per user task."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .errors import StreamaeError


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args) or 0
    except StreamaeError as e:
        print(f"streamae: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("streamae: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamae", description="Real-time audio denoising and machine-sound anomaly alerts.")
    parser.add_argument("--version", action="version", version=f"streamae {__version__}")
    sub = parser.add_subparsers(metavar="COMMAND")

    p = sub.add_parser("denoise", help="clean an audio file", description="Clean an audio file: WAV/FLAC/OGG/MP3, "
                       "any rate and channel count; the output keeps rate, channels, length and timing.")
    p.add_argument("input", help="audio file to clean")
    p.add_argument("-o", "--output", required=True, help="output file; its extension picks the format")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output (also OUTPUT == INPUT)")
    _add_model_options(p)
    p.set_defaults(run=_denoise)

    p = sub.add_parser("info", help="show a model's card: rate, latency, size, training, scores")
    p.add_argument("model", nargs="?", default=None, help="model .onnx (default: the shipped denoiser)")
    p.set_defaults(run=_info)

    p = sub.add_parser("train", help="train a model (needs the 'train' extra: torch)")
    train_sub = p.add_subparsers(metavar="MODEL")
    t = train_sub.add_parser("denoiser", help="train the denoising autoencoder")
    _add_training_arguments(t)
    t.set_defaults(run=_train_denoiser)
    return parser


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="denoiser .onnx (default: the shipped model)")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: let it choose)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="onnxruntime provider")
    p.add_argument("--atten-lim-db", type=float, default=None,
                   help="keep the noise this many dB down instead of removing it (e.g. 20)")


def _load_denoiser(args):
    from .denoiser import Denoiser

    return Denoiser(args.model, threads=args.threads, device=args.device, atten_lim_db=args.atten_lim_db)


def _denoise(args) -> int:
    from .denoise import denoise_file

    denoiser = _load_denoiser(args)
    result = denoise_file(denoiser, args.input, args.output, overwrite=args.overwrite)
    speed = result.audio_seconds / max(result.elapsed_seconds, 1e-9)
    print(f"wrote {result.target} ({result.audio_seconds:.1f} s of audio in {result.elapsed_seconds:.2f} s, "
          f"{speed:.0f}x real time; model latency {denoiser.latency_samples} samples = "
          f"{1000 * denoiser.latency_samples / denoiser.sample_rate:.1f} ms at {denoiser.sample_rate} Hz)")
    return 0


def _info(args) -> int:
    import json

    from . import runtime
    from .denoiser import DEFAULT_MODEL, step_graph_path

    path = Path(args.model) if args.model else runtime.models_dir() / DEFAULT_MODEL
    info = runtime.metadata(runtime.session(step_graph_path(path)))
    print(json.dumps({"model": str(path), **info}, indent=2))
    return 0


def _add_training_arguments(p: argparse.ArgumentParser) -> None:
    try:
        from .train.train_denoiser import add_arguments
    except ImportError as e:  # torch missing: say how to get it, but keep the parser usable
        p.set_defaults(missing=str(e))
        p.add_argument("rest", nargs=argparse.REMAINDER)
        return
    add_arguments(p)


def _train_denoiser(args) -> int:
    if getattr(args, "missing", None):
        raise StreamaeError(f"training needs torch ({args.missing}); install with: pip install -e '.[train]'")
    from .train.train_denoiser import main as train

    train(args)
    return 0
