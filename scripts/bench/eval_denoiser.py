"""Score a denoiser on the seeded dev mix and write its model card.

    python scripts/bench/eval_denoiser.py models/denoiser-v2.onnx \
        --speech ../shared/data/speech/dev --noise ../shared/data/noise/dev --card models/denoiser-v2.json

Dev mix: every file of speech/dev once, with a seeded noise from noise/dev at -5, 0, 5, 10
or 15 dB SNR (cycling) and a seeded level of -35..-15 dBFS (streamae.evaluation.make_test_mix).
Scores: PESQ-WB, STOI, SI-SDR against the clean speech, averaged and per SNR. Also the
CPU cost on one thread, streaming 10 ms chunks and whole-file.
"""
from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

from streamae import Denoiser
from streamae.audio import SAMPLE_RATE
from streamae.evaluation import make_test_mix, quality_scores
from streamae.train.config import config_from_dict  # plain data, no torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--speech", required=True)
    p.add_argument("--noise", required=True)
    p.add_argument("--card", help="write the model card JSON here")
    p.add_argument(
        "--card-extra",
        nargs="+",
        default=[],
        help="JSON files merged into the card in order (data, licences, recipe; a later file's keys win)",
    )
    p.add_argument(
        "--bench",
        default=None,
        metavar="JSON:SYSTEM",
        help="pin this model's row of a scripts/bench/bench_denoise.py result (and DTLN's cost ratio) "
        "in the card",
    )
    args = p.parse_args()

    d = Denoiser(args.model, threads=1)
    mixes = make_test_mix(args.speech, args.noise)
    rows = []
    for i, m in enumerate(mixes, 1):
        noisy = quality_scores(m.noisy, m.clean)
        clean = quality_scores(d.process(m.noisy, SAMPLE_RATE), m.clean)
        rows.append((m.snr_db, noisy, clean))
        print(f"\r{i}/{len(mixes)} scored", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    dev = {"noisy": _mean([r[1] for r in rows]), "streamae": _mean([r[2] for r in rows]),
           "by_snr_db": {str(int(s)): {"noisy": _mean([r[1] for r in rows if r[0] == s]),
                                      "streamae": _mean([r[2] for r in rows if r[0] == s])}
                         for s in sorted({r[0] for r in rows})},
           "mixtures": len(rows), "audio_seconds": round(sum(len(m.noisy) for m in mixes) / SAMPLE_RATE, 1)}
    speed = _speed(d)
    print(json.dumps({"dev": dev, "speed": speed}, indent=2))
    if args.card:
        card = _card(d, dev, speed, args)
        Path(args.card).write_text(json.dumps(card, indent=2) + "\n")
        print(f"wrote {args.card}")


def _mean(scores: list[dict]) -> dict:
    return {k: round(float(np.mean([s[k] for s in scores])), 3) for k in scores[0]}


def _speed(d: Denoiser, seconds: float = 60.0) -> dict:
    """CPU seconds per audio second on one thread: streaming 10 ms chunks, and whole file."""
    x = (0.05 * np.random.default_rng(0).standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)
    s = d.stream(SAMPLE_RATE)
    t = time.process_time()
    for i in range(0, len(x), 160):
        s.process(x[i:i + 160])
    stream = (time.process_time() - t) / seconds
    t = time.process_time()
    d.process(x, SAMPLE_RATE)
    whole = (time.process_time() - t) / seconds
    return {"stream_10ms_cpu_s_per_s": round(stream, 4), "whole_file_cpu_s_per_s": round(whole, 4),
            "whole_file_x_realtime": round(1 / whole), "threads": 1, "machine": f"{platform.machine()}, "
            f"{platform.processor() or 'cpu'}, measured {date.today().isoformat()}"}


def _card(d: Denoiser, dev: dict, speed: dict, args) -> dict:
    c = d.info["config"]
    card = {
        "name": Path(args.model).stem,
        "task": "speech denoising (causal, streaming)",
        "files": {
            "whole_signal_graph": Path(args.model).name,
            "streaming_step_graph": Path(args.model).stem + ".step.onnx",
        },
        "sample_rate": d.sample_rate,
        "window_samples": c["window"],
        "hop_samples": c["hop"],
        "latency_samples": d.latency_samples,
        "latency_ms": round(1000 * d.latency_samples / d.sample_rate, 2),
        "parameters": d.info.get("parameters"),
        "architecture": config_from_dict(c).architecture(),
        "sparsity": d.info.get("sparsity"),
        "training": d.info.get("training"),
        "dev": dev,
        "speed": speed,
        "reproduce": "python scripts/bench/eval_denoiser.py " + shlex.join(sys.argv[1:]),
    }
    for extra in args.card_extra:
        card.update(json.loads(Path(extra).read_text()))
    if args.bench:
        card["benchmark"] = _bench_row(*args.bench.rsplit(":", 1))
    return card


def _bench_row(path: str, system: str) -> dict:
    """This model's side-by-side numbers, with the cost as a ratio to DTLN's in the same run."""
    results = json.loads(Path(path).read_text())
    row = results["systems"][system]["dev"]
    dtln = next(
        r["dev"]["cpu_s_per_audio_s"] for name, r in results["systems"].items() if name.startswith("DTLN")
    )
    return {
        "date": results["date"],
        "machine": results["machine"],
        "pesq_wb": round(row["mean"]["pesq_wb"], 3),
        "stoi": round(row["mean"]["stoi"], 3),
        "si_sdr": round(row["mean"]["si_sdr"], 2),
        "stream_cpu_x_dtln": round(row["cpu_s_per_audio_s"] / dtln, 2),
        "lag_ms": row["lag_ms"],
        "others": {
            name: {k: round(v, 3) for k, v in r["dev"]["mean"].items()}
            for name, r in results["systems"].items()
            if name != system
        },
        "command": "python -m scripts.bench.bench_denoise (see docs/BENCHMARKS.md)",
    }


if __name__ == "__main__":
    main()
