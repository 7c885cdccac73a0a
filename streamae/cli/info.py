"""`streamae info [MODEL]`: a model's metadata and, beside it, its card."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import runtime
from ..denoiser import DEFAULT_MODEL


def register(commands) -> None:
    p = commands.add_parser("info", help="show a model's metadata and, where it sits beside the model, "
                            "its card (MODEL.json)")
    p.add_argument("model", nargs="?", default=None, help="model .onnx (default: the shipped denoiser)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    path = Path(args.model) if args.model else runtime.models_dir() / DEFAULT_MODEL
    info = runtime.metadata(
        runtime.session(path)
    )  # what the graph carries: kind, config, training, threshold
    card = path.with_suffix(".json")  # the full card (scores, data, licence) where it is shipped beside it
    if card.is_file():
        info |= json.loads(card.read_text())
    print(json.dumps({"model": str(path), **info}, indent=2))
    return 0
