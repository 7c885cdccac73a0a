"""`streamae anomaly train|score|eval` and `streamae monitor SOURCE` (argparse only; the
work lives in the modules these call, and torch is imported by `anomaly train` alone)."""
from __future__ import annotations

import argparse
import json
import sys

from ..errors import StreamaeError


def add_parser(sub) -> None:
    p = sub.add_parser("anomaly", help="machine-sound anomaly models: train, score files, evaluate",
                       description="Learn a machine's normal sound and score recordings against it.")
    tasks = p.add_subparsers(metavar="TASK")
    _add_train(tasks)
    _add_score(tasks)
    _add_eval(tasks)
    p.set_defaults(run=lambda args: p.print_help() or 2)
    _add_monitor(sub)


def _add_train(tasks) -> None:
    p = tasks.add_parser("train", help="train on normal recordings (needs the 'train' extra: torch)",
                         description="Train a sparse convolutional autoencoder on normal sound only, calibrate "
                                     "its threshold on held-out normal audio and export MODEL.onnx + MODEL.json.")
    p.add_argument("--normal", nargs="+", required=True, help="normal recordings: files or folders")
    p.add_argument("--val-normal", nargs="+", default=None,
                   help="held-out normal recordings for the threshold (default: hold out --val-fraction of --normal)")
    p.add_argument("-o", "--output", required=True, help="model to write, MODEL.onnx (its card goes to MODEL.json)")
    p.add_argument("--run-dir", default=None, help="checkpoints; resumed if present (default runs/anomaly-MODEL)")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--minutes", type=float, default=4.0, help="training time budget, wall clock (default 4)")
    p.add_argument("--steps", type=int, default=0, help="step budget (0: time only)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--sparsity", type=float, default=0.02,
                   help="L1 weight on the code (default 0.02; 0.05 left the UAV model with an all-zero code)")
    p.add_argument("--hidden", type=int, default=96, help="hidden channels")
    p.add_argument("--code", type=int, default=12, help="code channels per 2 frames (64 bands in)")
    p.add_argument("--window-seconds", type=float, default=2.0, help="audio per score (default 2)")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--percentile", type=float, default=99.5,
                   help="threshold = this percentile of held-out normal window scores (default 99.5)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: all cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-seconds", type=float, default=5.0, help="a progress line every this many seconds")
    p.add_argument("--checkpoint-minutes", type=float, default=1.0)
    p.set_defaults(run=_train)


def _add_score(tasks) -> None:
    p = tasks.add_parser("score", help="score recordings against a model",
                         description="Score each file: its alert level, the highest threshold at which the "
                         "monitor's k-of-n rule would fire on it (higher = more anomalous), so a file "
                         "is anomalous exactly when `streamae monitor` would alert on it.")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files or folders")
    p.add_argument("--model", required=True, help="anomaly model .onnx")
    p.add_argument("--json", action="store_true", help="one JSON object per line per file")
    p.add_argument("--threshold", type=float, default=None, help="override the model's calibrated threshold")
    p.add_argument("--hop", type=float, default=0.5, help="seconds between windows (default 0.5)")
    _add_policy(p)  # a file is anomalous when the monitor, with this policy, would alert on it
    p.set_defaults(run=_score)


def _add_policy(p: argparse.ArgumentParser) -> None:
    p.add_argument("-k", type=int, default=3, help="alert when k of the last n windows are above (default 3)")
    p.add_argument("-n", type=int, default=4, help="(default 4)")


def _add_eval(tasks) -> None:
    p = tasks.add_parser("eval", help="AUC / pAUC of a model on labelled normal and anomalous recordings")
    p.add_argument("--model", required=True, help="anomaly model .onnx")
    p.add_argument("--normal", nargs="+", required=True, help="normal recordings: files or folders")
    p.add_argument("--anomalous", nargs="+", required=True, help="anomalous recordings: files or folders")
    p.add_argument("--hop", type=float, default=0.5, help="seconds between windows (default 0.5)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    _add_policy(p)
    p.set_defaults(run=_eval)


def _add_monitor(sub) -> None:
    p = sub.add_parser("monitor", help="watch a file, a folder or the microphone and alert on anomalies",
                       description="Score a sound source window by window and emit anomaly_start/anomaly_end "
                                   "alerts as JSON lines, with k-of-n hysteresis and a cooldown.")
    p.add_argument("source", metavar="SOURCE", help="an audio file, a folder to watch for new files, or 'mic'")
    p.add_argument("--model", required=True, help="anomaly model .onnx")
    p.add_argument("--alerts", default=None, help="also append alerts to this JSON-lines file")
    p.add_argument("--quiet", action="store_true", help="no alerts on stdout (use with --alerts or --webhook)")
    p.add_argument("--webhook", default=None, metavar="URL", help="POST each alert as JSON to this URL")
    p.add_argument("--scores", default=None, metavar="FILE", help="append every window's score to this JSON-lines file")
    p.add_argument("--plot", default=None, metavar="PNG", help="draw scores, threshold and alerts when done (matplotlib)")
    p.add_argument("--threshold", type=float, default=None, help="override the model's calibrated threshold")
    p.add_argument("--hop", type=float, default=0.5, help="seconds between windows (default 0.5)")
    _add_policy(p)
    p.add_argument("--cooldown", type=float, default=30.0, help="seconds after an alert ends before another may start")
    p.add_argument("--existing", action="store_true", help="folder: also score the files already there, oldest first")
    p.add_argument("--poll", type=float, default=1.0, help="folder: seconds between looks for new files")
    p.add_argument("--idle-exit", type=float, default=None, metavar="S",
                   help="folder: stop after S seconds without a new file (default: run until Ctrl-C)")
    p.add_argument("--device", default=None, help="mic: input device name or index")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="mic: stop after S seconds (default: run until Ctrl-C)")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime threads (default 1)")
    p.set_defaults(run=_monitor)


def _train(args: argparse.Namespace) -> int:
    from ..cli import run_trainer

    return run_trainer("streamae.train.anomaly", args)


def _load(args: argparse.Namespace):
    from .scorer import AnomalyModel

    model = AnomalyModel(args.model, threads=getattr(args, "threads", 1))
    if getattr(args, "threshold", None) is not None:
        model.threshold = args.threshold
    return model


def _score(args: argparse.Namespace) -> int:
    from ..audio import audio_files
    from .alerts import AlertPolicy

    model = _load(args)
    failed = 0
    for path in audio_files(args.files):
        try:
            result = model.score_file(path, args.hop, AlertPolicy(args.k, args.n))
        except StreamaeError as e:  # one bad file does not stop the others
            print(f"streamae: error: {e}", file=sys.stderr, flush=True)
            failed += 1
            continue
        if args.json:
            print(json.dumps(result.to_dict()), flush=True)
        else:
            verdict = "ANOMALOUS" if result.anomalous else "normal"
            print(f"{verdict:9s} score {result.score:8.4f} (threshold {result.threshold:.4f}; "
                  f"{result.windows_above}/{result.windows} windows above)  {path}", flush=True)
    return 1 if failed else 0


def _eval(args: argparse.Namespace) -> int:
    from .alerts import AlertPolicy
    from .evaluate import evaluate, format_report

    report = evaluate(_load(args), args.normal, args.anomalous, args.hop, AlertPolicy(args.k, args.n))
    print(json.dumps(report) if args.json else format_report(report))
    return 0


def _monitor(args: argparse.Namespace) -> int:
    from .monitor import run_monitor

    return run_monitor(args, _load(args))
