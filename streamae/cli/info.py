"""`streamae info [MODEL]`: a model's metadata and, beside it, its card."""
from __future__ import annotations

import argparse
import json

from .. import runtime
from ..denoiser import DEFAULT_MODEL


def register(commands) -> None:
    p = commands.add_parser("info", help="show a model's metadata and, where it sits beside the model, "
                            "its card (MODEL.json)")
    p.add_argument("model", nargs="?", default=None,
                   help="a shipped denoiser's name (live, quality) or a model .onnx (default: live)")
    p.add_argument("--list", action="store_true", help="list the shipped denoisers: latency, CPU, scores")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.list:
        return list_denoisers()
    path = runtime.denoiser_path(args.model or DEFAULT_MODEL)
    info = runtime.metadata(
        runtime.session(path)
    )  # what the graph carries: kind, config, training, threshold
    card = path.with_suffix(".json")  # the full card (scores, data, licence) where it is shipped beside it
    if card.is_file():
        info |= json.loads(card.read_text())
    print(json.dumps({"model": str(path), **info}, indent=2))
    return 0


def list_denoisers() -> int:
    """One line per shipped denoiser, from its card: the side-by-side benchmark where the card
    pins it, else its own dev-mix scores."""
    print(f"{'name':8} {'file':24} {'latency':>9} {'CPU x DTLN':>10} {'PESQ-WB':>8} {'STOI':>6} "
          f"{'SI-SDR':>9}")
    for name, file in runtime.DENOISERS.items():
        card = json.loads((runtime.models_dir() / file).with_suffix(".json").read_text())
        bench = card.get("benchmark", {})
        scores = bench or card["dev"]["streamae"]
        ratio = f"{bench['stream_cpu_x_dtln']:.2f}" if "stream_cpu_x_dtln" in bench else "-"
        print(f"{name:8} {file:24} {card['latency_ms']:6.1f} ms {ratio:>10} {scores['pesq_wb']:8.2f} "
              f"{scores['stoi']:6.3f} {scores['si_sdr']:6.1f} dB")
    print("scores on the dev mix (docs/BENCHMARKS.md); pick one with --model NAME, "
          "or Denoiser(NAME) in Python")
    return 0
