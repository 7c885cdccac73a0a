"""`streamae denoise IN -o OUT` and `streamae denoise IN... --out-dir DIR`."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

from ..audio import os_error, path_kind
from ..denoise import Progress, denoise_file, plan_jobs, run_batch, summary
from ..errors import StreamaeError
from .common import add_denoiser_options, denoiser_factory


def register(commands) -> None:
    p = commands.add_parser(
        "denoise",
        help="clean audio files",
        description="Clean audio files: WAV/FLAC/OGG/MP3, "
        "any rate and channel count; outputs keep format, rate, channels, length and timing. "
        "One file: IN -o OUT. Many: IN... --out-dir DIR (folders mirrored; rerun to resume).",
    )
    p.add_argument("input", nargs="+", help="audio file(s) or folder(s) to clean")
    p.add_argument(
        "-o", "--output", default=None, help="output file (one input); its extension picks the format"
    )
    p.add_argument("--out-dir", default=None, help="write each input's cleaned copy under this folder")
    p.add_argument("--recursive", action="store_true", help="descend into sub-folders of input folders")
    p.add_argument("--glob", default=None, metavar="PATTERN",
                   help="in folders, clean files whose name matches (default: known audio extensions)")
    p.add_argument(
        "--jobs", type=int, default=None,
        help="files cleaned in parallel (default: cores; capped at the cores and the files)"
    )
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing outputs (also OUTPUT == INPUT); without it, done files are skipped")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="with --out-dir: clean on a Ray cluster, one worker per CPU (--device cuda: per "
                   "GPU), --jobs of them if given; ADDRESS: host:port, ray://host:port or auto (the "
                   "cluster `ray start` began here); without it RAY_ADDRESS, else a local cluster for "
                   "this run. Needs pip install 'streamae[cluster]' and storage every node sees")
    add_denoiser_options(p, default="quality")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.out_dir is None:
        if args.ray is not None:
            raise StreamaeError("--ray cleans many files: give --out-dir DIR")
        if args.output is None or len(args.input) != 1:
            raise StreamaeError("give -o OUT for one input file, or --out-dir DIR for many")
        if path_kind(args.input[0]) == "folder":
            raise StreamaeError(
                "is a folder: clean the files in it with --out-dir DIR, not -o", args.input[0]
            )
        return _one(args)
    if args.output is not None:
        raise StreamaeError("-o and --out-dir cannot be used together")
    if args.jobs is not None and args.jobs < 1:
        raise StreamaeError("--jobs must be at least 1")
    return _many(args)


def _one(args: argparse.Namespace) -> int:
    denoiser = denoiser_factory(args)()
    result = denoise_file(denoiser, args.input[0], args.output, overwrite=args.overwrite)
    speed = result.audio_seconds / max(result.elapsed_seconds, 1e-9)
    print(f"wrote {result.target} ({result.audio_seconds:.1f} s of audio in {result.elapsed_seconds:.2f} s, "
          f"{speed:.0f}x real time; model latency {denoiser.latency_samples} samples = "
          f"{1000 * denoiser.latency_samples / denoiser.sample_rate:.1f} ms at {denoiser.sample_rate} Hz)")
    for warning in result.warnings:
        print(f"streamae: warning: {result.source}: {warning}", file=sys.stderr)
    return 0


def _many(args: argparse.Namespace) -> int:
    out_dir = Path(args.out_dir)
    if path_kind(out_dir) == "file":
        raise StreamaeError("is not a folder", out_dir)
    jobs = plan_jobs(args.input, out_dir, args.recursive, args.glob)
    if args.ray is not None:
        return _on_ray(args, jobs, out_dir)
    workers = _workers(args.jobs, len(jobs))
    # processes, not threads, share the cores
    make_denoiser = denoiser_factory(args, threads=1 if workers > 1 and not args.threads else None)
    make_denoiser()  # fail fast (bad model, --device cuda without CUDA) before any process starts
    return _run_batch(jobs, out_dir, f"{workers} process(es)",
                      lambda progress: run_batch(jobs, make_denoiser, workers, args.overwrite, progress))


def _on_ray(args: argparse.Namespace, jobs: list, out_dir: Path) -> int:
    from .. import cluster  # imports ray: only here

    # workers elsewhere see the same paths, not this directory: a model file goes by its full path
    model = os.path.abspath(args.model) if Path(args.model).is_file() else args.model
    options = argparse.Namespace(**{**vars(args), "model": model})
    make_denoiser = denoiser_factory(options, threads=args.threads or 1)
    # fail fast (bad model) before the cluster starts; on the CPU: GPUs may be on the workers alone
    denoiser_factory(argparse.Namespace(**{**vars(options), "device": "cpu"}), threads=1)()
    gpu = args.device == "cuda"
    with cluster.session(args.ray or None, args.jobs, len(jobs), gpu) as (ray, workers):
        return _run_batch(jobs, out_dir, f"{workers} Ray worker(s){' on GPUs' if gpu else ''}",
                          lambda progress: cluster.run_batch_ray(ray, jobs, make_denoiser, workers,
                                                                 args.overwrite, progress, gpu=gpu))


def _run_batch(jobs: list, out_dir: Path, where: str, run: Callable[[Progress], list]) -> int:
    """The output folder, a progress line while `run` cleans, the summary and the exit status:
    the same for local processes and Ray workers."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise os_error(e, out_dir) from None
    print(f"denoise: {len(jobs)} files -> {out_dir} with {where}", file=sys.stderr)
    progress = Progress(len(jobs))
    try:
        outcomes = run(progress)
    except KeyboardInterrupt:
        progress.interrupted()
        raise
    print(summary(outcomes), file=sys.stderr)
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def _workers(jobs: int | None, files: int) -> int:
    """--jobs (default: the cores), capped at the files and the cores (more processes only cost
    memory and time), with a note when the user's number was capped."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = max(1, min(jobs or cores, files, cores))
    if jobs is not None and workers < jobs:
        why = f"{files} file(s)" if files <= cores else f"{cores} core(s)"
        print(f"denoise: --jobs {jobs} capped at {workers}: {why}", file=sys.stderr)
    return workers
