"""Clean audio files: any format and rate in, same format, rate, channels and length out.

Files are streamed in blocks through the same stream the live path uses, so memory stays
flat for long recordings and the output is time-aligned with the input (the model's
latency is dropped from the front and flushed from the back).

Many files (`IN... --out-dir DIR`) run in parallel processes, one model per process; the
tree is mirrored, and outputs appear only when complete (temporary name, then rename), so
a killed run is finished by running it again.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .audio import (
    AtomicAudioWriter,
    check_output,
    find_audio,
    open_input,
    output_format,
    read_blocks,
    same_file,
)
from .denoiser import Denoiser
from .errors import StreamaeError


@dataclass
class FileResult:
    source: Path
    target: Path
    audio_seconds: float
    elapsed_seconds: float


def denoise_file(
    denoiser: Denoiser, source: str | Path, target: str | Path, overwrite: bool = False
) -> FileResult:
    source, target = Path(source), Path(target)
    check_output(source, target, overwrite)
    started = time.perf_counter()
    with open_input(source) as f:
        fmt, subtype = output_format(target, like=f)
        stream = denoiser.stream(f.samplerate, channels=f.channels)
        to_skip = stream.latency_samples
        with AtomicAudioWriter(target, f.samplerate, f.channels, fmt, subtype) as out:
            for block in read_blocks(f):
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


# -- many files -----------------------------------------------------------------------------
@dataclass
class Job:
    source: Path
    target: Path


@dataclass
class Outcome:
    job: Job
    status: str  # "done", "skipped" or "failed"
    reason: str = ""
    audio_seconds: float = 0.0


def plan_jobs(
    inputs: list[str], out_dir: str | Path, recursive: bool = False, pattern: str | None = None
) -> list[Job]:
    """Files map to DIR/name, folders' contents to DIR/<path inside the folder> (mirrored)."""
    out_dir = Path(out_dir)
    jobs: list[Job] = []
    for item in map(Path, inputs):
        if item.is_dir():
            jobs += [
                Job(f, out_dir / f.relative_to(item)) for f in find_audio(item, recursive, pattern, out_dir)
            ]
        elif item.is_file():
            jobs.append(Job(item, out_dir / item.name))
        else:
            raise StreamaeError("no such file or folder", item)
    if not jobs:
        raise StreamaeError(
            f"no audio files in {', '.join(inputs)}" + ("" if recursive else " (add --recursive?)")
        )
    seen: dict[Path, Path] = {}
    for j in jobs:
        if j.target in seen:
            raise StreamaeError(f"both {seen[j.target]} and {j.source} would be written there", j.target)
        seen[j.target] = j.source
    return jobs


def run_batch(jobs: list[Job], make_denoiser: Callable[[], Denoiser], workers: int, overwrite: bool = False,
              progress: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Clean every job; `make_denoiser()` runs once per worker process. Never raises for one file."""
    todo, outcomes = [], []
    for job in jobs:
        if job.target.exists() and not overwrite:
            reason = "is the input file" if same_file(job.source, job.target) else "already done"
            outcomes.append(Outcome(job, "skipped", reason))
        else:
            todo.append(job)
    report = progress or (lambda outcome: None)
    for o in outcomes:
        report(o)
    if workers <= 1 or len(todo) <= 1:
        _init_worker(make_denoiser)
        for job in todo:
            outcomes.append(_clean_one(job))
            report(outcomes[-1])
        return outcomes
    # spawn, not fork: the parent may hold onnxruntime or torch threads, which fork does not copy safely
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, context, initializer=_init_worker, initargs=(make_denoiser,)) as pool:
        pending = {pool.submit(_clean_one, job) for job in todo}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                outcomes.append(f.result())
                report(outcomes[-1])
    return outcomes


_denoiser: Denoiser | None = None  # one per worker process


def _init_worker(make_denoiser) -> None:
    global _denoiser
    _denoiser = make_denoiser()


def _clean_one(job: Job) -> Outcome:
    try:
        job.target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_partials(job.target)
        result = denoise_file(_denoiser, job.source, job.target, overwrite=True)
        return Outcome(job, "done", audio_seconds=result.audio_seconds)
    except StreamaeError as e:
        return Outcome(job, "failed", str(e).removeprefix(f"{e.path}: ") if e.path else str(e))
    except Exception as e:  # one bad file must not stop the batch; report it
        return Outcome(job, "failed", f"{type(e).__name__}: {e}")


def _remove_stale_partials(target: Path) -> None:
    """Temporary files a killed run left beside `target` (their writer's PID is gone)."""
    for tmp in target.parent.glob(f".{target.name}.partial-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Progress:
    """One status line (rewritten in place on a terminal): files, audio hours, speed."""

    def __init__(self, total: int, stream=sys.stderr):
        self.total, self.stream = total, stream
        self.count = {"done": 0, "skipped": 0, "failed": 0}
        self.audio = 0.0
        self.started = time.perf_counter()
        self.tty = stream.isatty()
        self._last = self.started

    def __call__(self, outcome: Outcome) -> None:
        self.count[outcome.status] += 1
        self.audio += outcome.audio_seconds
        if outcome.status == "failed":
            self._print(f"failed: {outcome.job.source}: {outcome.reason}", final=True)
        now = time.perf_counter()
        if self.tty or now - self._last >= 5.0 or sum(self.count.values()) == self.total:
            self._last = now
            self._print(self.line(), final=not self.tty)

    def line(self) -> str:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        n = sum(self.count.values())
        hours = self.audio / 3600
        return (f"[{n}/{self.total} files] {hours:.3f} h of audio in {elapsed:.1f} s: "
                f"{self.count['done'] / elapsed:.2f} files/s, {hours / elapsed:.4f} audio-h/s "
                f"({hours * 3600 / elapsed:.0f} audio-h per wall-h)")

    def _print(self, text: str, final: bool) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def summary(outcomes: list[Outcome]) -> str:
    by = {s: [o for o in outcomes if o.status == s] for s in ("done", "skipped", "failed")}
    hours = sum(o.audio_seconds for o in by["done"]) / 3600
    lines = [
        f"done {len(by['done'])} ({hours:.3f} h of audio), skipped {len(by['skipped'])}, failed "
        f"{len(by['failed'])}"
    ]
    reasons: dict[str, int] = {}
    for o in by["skipped"]:
        reasons[o.reason] = reasons.get(o.reason, 0) + 1
    lines += [f"  skipped {n}: {why}" + ("" if why != "already done" else " (--overwrite to redo)")
              for why, n in reasons.items()]
    lines += [f"  failed: {o.job.source}: {o.reason}" for o in by["failed"]]
    return "\n".join(lines)
