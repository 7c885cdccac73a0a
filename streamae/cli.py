"""The `streamae` command: a thin layer over the Python API; one sub-command per user task."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .errors import StreamaeError
from .train.options import add_arguments as add_training_arguments

if TYPE_CHECKING:  # the runtime modules load only when a command needs them
    from .denoiser import Denoiser


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
    except BrokenPipeError:  # `streamae ... | head`: the reader has gone, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamae", description="Real-time audio denoising and machine-sound anomaly alerts.")
    parser.add_argument("--version", action="version", version=f"streamae {__version__}")
    sub = parser.add_subparsers(metavar="COMMAND")

    for register in _task_parsers():
        register(sub)

    p = sub.add_parser("info", help="show a model's metadata and, where it sits beside the model, its card (MODEL.json)")
    p.add_argument("model", nargs="?", default=None,
                   help="a shipped denoiser's name (live, quality) or a model .onnx (default: live)")
    p.add_argument("--list", action="store_true", help="list the shipped denoisers: latency, CPU, scores")
    p.set_defaults(run=_info)

    p = sub.add_parser("train", help="train a model (needs the 'train' extra: torch)")
    p.set_defaults(run=lambda args, usage=p: usage.print_help() or 2)
    train_sub = p.add_subparsers(metavar="MODEL")
    t = train_sub.add_parser("denoiser", help="train the denoising autoencoder")
    add_training_arguments(t)
    t.set_defaults(run=_train_denoiser)
    return parser


def _task_parsers():
    """Each user task's module adds its own sub-command(s); importing them stays cheap
    (no numpy-heavy or torch work at import)."""
    from . import denoise, live
    from .anomaly import cli as anomaly

    return [denoise.add_parser, live.add_parser, anomaly.add_parser]


def add_model_options(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--model", default=default,
                   help=f"a shipped denoiser, live (10 ms latency) or quality (32 ms), or an .onnx path "
                        f"(default: {default})")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: let it choose)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="onnxruntime provider")
    p.add_argument("--atten-lim-db", type=float, default=None,
                   help="keep the noise this many dB down instead of removing it (e.g. 20)")


def load_denoiser(args: argparse.Namespace) -> Denoiser:
    """The Denoiser the shared model options (add_model_options) ask for."""
    from .denoiser import Denoiser

    return Denoiser(args.model, threads=args.threads, device=args.device, atten_lim_db=args.atten_lim_db)


def _info(args) -> int:
    import json

    from . import runtime
    from .denoiser import DEFAULT_MODEL

    if args.list:
        return _list_denoisers()
    path = runtime.denoiser_path(args.model or DEFAULT_MODEL)
    info = runtime.metadata(runtime.session(path))  # what the graph carries: kind, config, training, threshold
    card = path.with_suffix(".json")  # the full card (scores, data, licence) where it is shipped beside it
    if card.is_file():
        info |= json.loads(card.read_text())
    print(json.dumps({"model": str(path), **info}, indent=2))
    return 0


def _list_denoisers() -> int:
    """One line per shipped denoiser, from its card."""
    import json

    from . import runtime

    print(f"{'name':8} {'file':22} {'latency':>9} {'CPU x DTLN':>10} {'PESQ-WB':>8} {'STOI':>6} {'SI-SDR':>7}")
    for name, file in runtime.DENOISERS.items():
        card = json.loads((runtime.models_dir() / file).with_suffix(".json").read_text())
        bench, dev = card.get("benchmark", {}), card.get("dev", {}).get("streamae", {})
        scores = bench or dev
        ratio = f"{bench['stream_cpu_x_dtln']:.2f}" if "stream_cpu_x_dtln" in bench else "-"
        print(f"{name:8} {file:22} {card['latency_ms']:6.1f} ms {ratio:>10} {scores.get('pesq_wb', 0):8.2f} "
              f"{scores.get('stoi', 0):6.3f} {scores.get('si_sdr', 0):5.1f} dB")
    print("dev mix scores (docs/BENCHMARKS.md); use a name with --model, or Denoiser(NAME) in Python")
    return 0


def run_trainer(module: str, args: argparse.Namespace) -> int:
    """Import a trainer (torch, onnx) only when one is asked for, with the install hint if missing."""
    try:
        train = importlib.import_module(module).main
    except ImportError as e:
        raise StreamaeError(f"training needs torch and onnx ({e}); install with: pip install -e '.[train]'") from None
    train(args)
    return 0


def _train_denoiser(args: argparse.Namespace) -> int:
    return run_trainer("streamae.train.train_denoiser", args)
