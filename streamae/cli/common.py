"""Options more than one command shares, each declared once, with its default from the library."""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import warnings
from functools import partial
from typing import Callable

from ..anomaly.alerts import AlertPolicy
from ..anomaly.scorer import DEFAULT_HOP_SECONDS, AnomalyModel
from ..denoiser import Denoiser
from ..errors import StreamaeError


def add_denoiser_options(p: argparse.ArgumentParser, default: str) -> None:
    """Which denoiser runs, and on what: `denoiser_factory` reads these. `default`: a shipped
    denoiser's name (runtime.DENOISERS)."""
    p.add_argument("--model", default=default,
                   help="a shipped denoiser, live (10 ms latency) or quality (32 ms), or a denoiser .onnx "
                        f"(default: {default})")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: let it choose)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="where the model runs: onnxruntime's CPU or CUDA provider (default cpu)")
    p.add_argument("--atten-lim-db", type=float, default=None,
                   help="keep the noise this many dB down instead of removing it (e.g. 20)")


def denoiser_factory(args: argparse.Namespace, threads: int | None = None) -> Callable[[], Denoiser]:
    """A picklable maker of the Denoiser the options ask for (a process pool sends it to each worker)."""
    return partial(Denoiser, args.model, threads=args.threads if threads is None else threads,
                   device=args.device, atten_lim_db=args.atten_lim_db)


def add_anomaly_model_options(p: argparse.ArgumentParser, threads: int | None = None) -> None:
    p.add_argument("--model", required=True, help="anomaly model .onnx")
    p.add_argument("--threshold", type=float, default=None, help="override the model's calibrated threshold")
    p.add_argument("--silence-db", type=float, default=None, metavar="DB",
                   help="frames below this level (dB re full-scale noise) are the machine off, never "
                   "scored (default: the model's, 20 dB under its normal training audio's median level)")
    if threads is not None:
        p.add_argument(
            "--threads", type=int, default=threads, help="onnxruntime threads (default %(default)s)"
        )


def load_anomaly_model(args: argparse.Namespace) -> AnomalyModel:
    model = AnomalyModel(args.model, threads=getattr(args, "threads", 1))
    if args.threshold is not None:
        model.threshold = args.threshold
    if getattr(args, "silence_db", None) is not None:
        model.features = dataclasses.replace(model.features, silence_db=args.silence_db)
    return model


def add_scoring_options(p: argparse.ArgumentParser, cooldown: bool = False) -> None:
    """The window hop and the k-of-n alert rule (defaults: DEFAULT_HOP_SECONDS, AlertPolicy)."""
    p.add_argument("--hop", type=float, default=DEFAULT_HOP_SECONDS,
                   help="seconds between windows (default %(default)s)")
    p.add_argument("-k", type=int, default=AlertPolicy.k,
                   help="alert when k of the last n windows are above (default %(default)s)")
    p.add_argument("-n", type=int, default=AlertPolicy.n, help="(default %(default)s)")
    if cooldown:
        p.add_argument("--cooldown", type=float, default=AlertPolicy.cooldown_s,
                       help="seconds after an alert ends before another may start (default %(default)s)")


def alert_policy(args: argparse.Namespace) -> AlertPolicy:
    return AlertPolicy(args.k, args.n, getattr(args, "cooldown", AlertPolicy.cooldown_s))


def run_trainer(module: str, options: argparse.Namespace) -> int:
    """Import a trainer (torch, onnx) only when one is asked for, with the install hint if missing.
    Warnings about torchvision (which the trainers never use) that torch's exporter may print
    where it is installed are silenced."""
    warnings.filterwarnings("ignore", module=r"torchvision(\.|$)")
    warnings.filterwarnings("ignore", message=r"(?s).*torchvision")
    try:
        train = importlib.import_module(module).main
    except ImportError as e:
        raise StreamaeError(
            f"training needs torch and onnx ({e}); install with: pip install -e '.[train]'"
        ) from None
    train(options)
    return 0
