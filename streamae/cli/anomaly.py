"""`streamae anomaly train|score|eval`: learn a machine's normal sound, score recordings against it.
(torch is imported by `anomaly train` alone, when it runs.)"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from functools import partial
from pathlib import Path

from ..anomaly.calibrate import DEFAULT_FALSE_ALERTS_PER_HOUR, DEFAULT_MARGIN
from ..anomaly.evaluate import evaluate, format_report
from ..audio import audio_files
from ..errors import StreamaeError
from .common import (
    add_anomaly_model_options,
    add_scoring_options,
    alert_policy,
    load_anomaly_model,
    run_trainer,
)


def register(commands) -> None:
    p = commands.add_parser("anomaly", help="machine-sound anomaly models: train, score files, evaluate",
                            description="Learn a machine's normal sound and score recordings against it.")
    tasks = p.add_subparsers(metavar="TASK")
    _register_train(tasks)
    _register_score(tasks)
    _register_eval(tasks)
    p.set_defaults(run=lambda args: p.print_help() or 2)


def _register_train(tasks) -> None:
    p = tasks.add_parser(
        "train",
        help="train on normal recordings (needs the 'train' extra: torch)",
        description="Train a sparse convolutional autoencoder on normal sound only, calibrate "
        "its threshold on held-out normal audio and export MODEL.onnx + MODEL.json.",
    )
    p.add_argument("--normal", nargs="+", required=True, help="normal recordings: files or folders")
    p.add_argument(
        "--val-normal",
        nargs="+",
        default=None,
        help="held-out normal recordings for the threshold (default: hold out --val-fraction of --normal)",
    )
    p.add_argument(
        "-o", "--output", required=True, help="model to write, MODEL.onnx (its card goes to MODEL.json)"
    )
    p.add_argument(
        "--run-dir", default=None, help="checkpoints; resumed if present (default runs/anomaly-MODEL)"
    )
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing MODEL.onnx (without it, an existing model is refused)")
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
    p.add_argument("--norm", choices=["smooth", "window", "frame"], default="smooth",
                   help="remove level per frame, averaged over 0.5 s (default: ramps and gain changes go, "
                   "clicks stay), per window (as before 2026-12), or per frame")
    p.add_argument("--false-alerts-per-hour", type=float, default=DEFAULT_FALSE_ALERTS_PER_HOUR, metavar="R",
                   help="calibrate the k-of-n alert rule on the held-out normal audio for at most R false "
                   "alerts per hour (default 1/24: one a day)")
    p.add_argument("--margin", type=float, default=DEFAULT_MARGIN,
                   help="threshold margin over the calibration, in tail scales; each divides the expected "
                   "false-alert rate by e (default %(default)s)")
    add_scoring_options(p)  # the rule the threshold is calibrated for
    p.add_argument("--percentile", type=float, default=None,
                   help="instead: threshold = this percentile of held-out normal window scores "
                   "(the old method)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: all cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-seconds", type=float, default=5.0, help="a progress line every this many seconds")
    p.add_argument("--checkpoint-minutes", type=float, default=1.0)
    p.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    """Refuse to replace a model before anything slow starts; then say that it started (importing
    torch and reading the recordings can take a while before the first progress line)."""
    if Path(args.output).exists() and not args.overwrite:
        raise StreamaeError("already exists; pass --overwrite to replace it (training resumes from the "
                            "run folder's checkpoint if there is one; --fresh starts over)", args.output)
    print(f"anomaly train: {args.output}: loading torch and reading the normal recordings...", flush=True)
    return run_trainer("streamae.train.anomaly", args)


def _register_score(tasks) -> None:
    p = tasks.add_parser("score", help="score recordings against a model",
                         description="Score each file: its alert level, the highest threshold at which the "
                         "monitor's k-of-n rule would fire on it (higher = more anomalous), so a file "
                         "is anomalous exactly when `streamae monitor` would alert on it.")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files or folders")
    add_anomaly_model_options(p)
    p.add_argument("--json", action="store_true", help="one JSON object per line per file")
    add_scoring_options(p)  # a file is anomalous when the monitor, with this policy, would alert on it
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="score on a Ray cluster, one worker per CPU (results in input order); ADDRESS as "
                   "for `streamae denoise --ray`. Needs pip install 'streamae[cluster]'")
    p.add_argument("--jobs", type=int, default=None, help="with --ray: workers (default: the cluster's CPUs)")
    p.set_defaults(run=_score)


def _register_eval(tasks) -> None:
    p = tasks.add_parser("eval", help="AUC / pAUC of a model on labelled normal and anomalous recordings")
    p.add_argument("--model", required=True, help="anomaly model .onnx")
    p.add_argument("--normal", nargs="+", required=True, help="normal recordings: files or folders")
    p.add_argument("--anomalous", nargs="+", required=True, help="anomalous recordings: files or folders")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    add_scoring_options(p)
    p.set_defaults(run=_eval, threshold=None)


def _score(args: argparse.Namespace) -> int:
    model = load_anomaly_model(args)
    policy = alert_policy(args)
    if args.ray is not None:
        return _score_on_ray(args, policy)
    failed = 0
    for path in audio_files(args.files):
        try:
            result = model.score_file(path, args.hop, policy)
        except StreamaeError as e:  # one bad file does not stop the others
            print(f"streamae: error: {e}", file=sys.stderr, flush=True)
            failed += 1
            continue
        _print_score(args, path, result)
    return 1 if failed else 0


def _score_on_ray(args: argparse.Namespace, policy) -> int:
    from .. import cluster  # imports ray: only here

    if args.jobs is not None and args.jobs < 1:
        raise StreamaeError("--jobs must be at least 1")
    paths = audio_files(args.files)
    # workers elsewhere see the same paths, not this directory
    options = argparse.Namespace(model=os.path.abspath(args.model), threshold=args.threshold,
                                 silence_db=args.silence_db, threads=1)
    make = partial(load_anomaly_model, options)
    work = partial(_score_one, hop=args.hop, policy=policy)
    failed, done, following = 0, {}, 0
    with cluster.session(args.ray or None, args.jobs, len(paths)) as (ray, workers):
        items = [os.path.abspath(p) for p in paths]
        for i, result in cluster.map_on_ray(ray, items, make, cluster.keep, work, workers):
            done[i] = result
            while following in done:  # in input order, as without --ray
                path, result = paths[following], done.pop(following)
                following += 1
                if isinstance(result, (Exception, str)):  # str: the StreamaeError the file gave
                    print(f"streamae: error: {path}: {result}", file=sys.stderr, flush=True)
                    failed += 1
                else:
                    _print_score(args, path, dataclasses.replace(result, file=str(path)))
    return 1 if failed else 0


def _score_one(model, path: str, hop: float, policy):
    """On a Ray worker: the file's FileScore, or the reason it has none (as the local loop says it)."""
    try:
        return model.score_file(path, hop, policy)
    except StreamaeError as e:
        return str(e).removeprefix(f"{e.path}: ") if e.path else str(e)


def _print_score(args: argparse.Namespace, path, result) -> None:
    if args.json:
        print(json.dumps(result.to_dict()), flush=True)
    else:
        verdict = "ANOMALOUS" if result.anomalous else "silent" if result.silent else "normal"
        quiet = result.silent_windows + result.transition_windows
        print(f"{verdict:9s} score {result.score:8.4f} (threshold {result.threshold:.4f}; "
              f"{result.windows_above}/{result.windows} windows above"
              f"{f'; {quiet} silent or starting/stopping, not scored' if quiet else ''})  {path}",
              flush=True)


def _eval(args: argparse.Namespace) -> int:
    report = evaluate(load_anomaly_model(args), args.normal, args.anomalous, args.hop, alert_policy(args))
    print(json.dumps(report) if args.json else format_report(report))
    return 0
