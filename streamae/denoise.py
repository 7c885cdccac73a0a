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
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing import connection
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .audio import (
    AtomicAudioWriter,
    check_output,
    find_audio,
    header_frames,
    open_input,
    os_error,
    os_reason,
    output_format,
    partial_path,
    path_kind,
    read_blocks,
    refuse_url,
    remove_stale_partials_in,
    same_file,
)
from .denoiser import Denoiser, count_bad_samples
from .errors import StreamaeError


@dataclass
class FileResult:
    source: Path
    target: Path
    audio_seconds: float
    elapsed_seconds: float
    warnings: list[str] = field(default_factory=list)  # cleaned, but the user should know


def denoise_file(
    denoiser: Denoiser, source: str | Path, target: str | Path, overwrite: bool = False,
    clear_stale: bool = True,
) -> FileResult:
    """Clean `source` into `target` (published only when complete). A valid file with no samples
    gives an empty file of the same format; a file shorter than its header says is cleaned as far
    as it goes, with a warning in the result."""
    source, target = Path(source), Path(target)
    check_output(source, target, overwrite)
    started = time.perf_counter()
    warnings = []
    with open_input(source, allow_empty=True) as f:
        fmt, subtype = output_format(target, like=f)
        stream = denoiser.stream(f.samplerate, channels=f.channels)
        to_skip = stream.latency_samples
        read = bad = 0
        with AtomicAudioWriter(target, f.samplerate, f.channels, fmt, subtype, clear_stale) as out:
            if f.frames:
                for block in read_blocks(f):
                    read += block.shape[-1]
                    bad += count_bad_samples(block)
                    to_skip = _write_after(out, stream.process(block), to_skip)
                _write_after(out, np.atleast_2d(stream.flush()), to_skip)
        if bad:
            warnings.append(f"{bad} samples were NaN or infinite; cleaned as silence")
        promised = max(f.frames, header_frames(f))
        if read < promised:
            warnings.append(f"truncated: its header says {promised} frames, {read} are there; "
                            f"cleaned the {read}")
        seconds = read / f.samplerate
    return FileResult(source, target, seconds, time.perf_counter() - started, warnings)


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
    warnings: list[str] = field(default_factory=list)


def plan_jobs(
    inputs: list[str], out_dir: str | Path, recursive: bool = False, pattern: str | None = None
) -> list[Job]:
    """Files map to DIR/name, folders' contents to DIR/<path inside the folder> (mirrored)."""
    refuse_url(out_dir)
    out_dir = Path(out_dir)
    jobs: list[Job] = []
    for item in map(Path, inputs):
        kind = path_kind(item)
        if kind == "folder":
            if out_dir.exists() and os.path.samefile(item, out_dir):
                raise StreamaeError("is the input folder too: give --out-dir another folder", out_dir)
            jobs += [
                Job(f, out_dir / f.relative_to(item)) for f in find_audio(item, recursive, pattern, out_dir)
            ]
        elif kind == "file":
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


def split_done(jobs: list[Job], overwrite: bool = False) -> tuple[list[Job], list[Outcome]]:
    """(jobs to run, skipped outcomes), after removing the temporary files killed runs left. Every
    batch runner (these processes, Ray's workers in streamae.cluster) starts with it."""
    for folder in {job.target.parent for job in jobs}:  # what killed runs left, done files' included
        remove_stale_partials_in(folder)
    todo, skipped = [], []
    for job in jobs:
        if job.target.exists() and not overwrite:
            reason = "is the input file" if same_file(job.source, job.target) else "already done"
            skipped.append(Outcome(job, "skipped", reason))
        else:
            todo.append(job)
    return todo, skipped


def run_batch(jobs: list[Job], make_denoiser: Callable[[], Denoiser], workers: int, overwrite: bool = False,
              progress: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Clean every job; `make_denoiser()` runs once per worker process. Never raises for one file.

    Ctrl-C (KeyboardInterrupt) stops every worker within about a second, removes the files they
    were writing and propagates; a worker whose parent dies (kill -9) stops too."""
    todo, outcomes = split_done(jobs, overwrite)
    report = progress or (lambda outcome: None)
    for o in outcomes:
        report(o)
    if workers <= 1 or len(todo) <= 1:
        _init_worker(make_denoiser)
        for job in todo:
            outcomes.append(_clean_one(job))
            report(outcomes[-1])
        return outcomes
    with _Pool(min(workers, len(todo)), make_denoiser) as pool:
        for outcome in pool.map(todo):
            outcomes.append(outcome)
            report(outcome)
    return outcomes


STOP_GRACE_SECONDS = 1.0  # after Ctrl-C, how long workers get to remove their files before SIGKILL


class _Pool:
    """Worker processes, one job at a time each, over pipes.

    Not concurrent.futures: its pool finishes its queue after Ctrl-C, deadlocks on a second one
    and leaves its workers running when the parent is killed. Here the workers ignore SIGINT
    (the parent stops them), stop on SIGTERM (removing the file they were writing) and get
    SIGTERM when the parent dies (PR_SET_PDEATHSIG on Linux; a watcher thread elsewhere).
    """

    def __init__(self, size: int, make_denoiser: Callable[[], Denoiser]):
        # spawn, not fork: the parent may hold onnxruntime or torch threads, which fork does not copy safely
        self._context = multiprocessing.get_context("spawn")
        self._make = make_denoiser
        self._workers: list[tuple] = []  # (process, connection)
        self._busy: dict[int, Job] = {}  # worker index -> its job
        for _ in range(size):
            self._workers.append(self._start())

    def _start(self) -> tuple:
        parent, child = self._context.Pipe()
        process = self._context.Process(target=_worker_main, args=(child, self._make, os.getpid()),
                                        name="streamae-denoise", daemon=True)
        # the child inherits SIG_IGN across exec: a Ctrl-C while it imports cannot print a traceback there
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            process.start()
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
        child.close()
        return process, parent

    def map(self, jobs: list[Job]) -> Iterator[Outcome]:
        queue = deque(jobs)
        idle = list(range(len(self._workers)))
        while queue or self._busy:
            while idle and queue:
                i = idle.pop()
                self._busy[i] = queue.popleft()
                try:
                    self._workers[i][1].send(self._busy[i])
                except OSError:  # it died while idle (the OOM killer, say): a new one takes the job
                    self._workers[i][1].close()
                    self._workers[i] = self._start()
                    self._workers[i][1].send(self._busy[i])
            waits = {}
            for i in self._busy:
                process, conn = self._workers[i]
                waits[conn], waits[process.sentinel] = i, i
            for ready in connection.wait(list(waits)):
                i = waits[ready]
                if i not in self._busy:
                    continue  # its pipe and its sentinel were both ready
                process, conn = self._workers[i]
                try:
                    outcome = conn.recv()
                except (EOFError, OSError):  # it died: killed, out of memory, crashed in native code
                    process.join()
                    job = self._busy[i]
                    _discard_partial(job.target, process.pid)
                    why = _exit_reason(process.exitcode)
                    outcome = Outcome(job, "failed", f"the worker process died ({why})")
                    conn.close()
                    self._workers[i] = self._start()
                del self._busy[i]
                idle.append(i)
                yield outcome

    def __enter__(self) -> "_Pool":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            for process, conn in self._workers:
                try:
                    conn.send(None)
                except OSError:
                    pass
            for process, conn in self._workers:
                process.join()
                conn.close()
            return
        try:
            self._stop(STOP_GRACE_SECONDS)
        except KeyboardInterrupt:  # a second Ctrl-C: no more waiting
            self._stop(0.0)
            raise

    def _stop(self, grace: float) -> None:
        """SIGTERM every worker, SIGKILL those still there after `grace` s, remove what they wrote."""
        for process, _ in self._workers:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + grace
        for process, _ in self._workers:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        for i, job in self._busy.items():
            _discard_partial(job.target, self._workers[i][0].pid)
        for _, conn in self._workers:
            conn.close()


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _discard_partial(target: Path, pid: int | None) -> None:
    if pid is not None:
        try:
            partial_path(target, pid).unlink(missing_ok=True)
        except OSError:
            pass


class _Stopped(BaseException):
    """SIGTERM in a worker: unwinds (removing the file being written), never caught as a failure."""


def _on_sigterm(signum, frame) -> None:
    raise _Stopped()


def _worker_main(conn, make_denoiser: Callable[[], Denoiser], parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    _die_with_parent(parent_pid)
    try:
        try:
            _init_worker(make_denoiser)
        except Exception as e:  # every job then fails with the reason
            failure = str(e) if isinstance(e, StreamaeError) else f"{type(e).__name__}: {e}"
        else:
            failure = None
        while True:
            job = conn.recv()
            if job is None:
                return
            conn.send(Outcome(job, "failed", failure) if failure else _clean_one(job))
    except (_Stopped, EOFError, BrokenPipeError, KeyboardInterrupt):
        return


def _die_with_parent(parent_pid: int) -> None:
    """SIGTERM this process when `parent_pid` is gone, so kill -9 of the parent takes its workers."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            PR_SET_PDEATHSIG = 1
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # died before the prctl
        raise _Stopped()

    def watch() -> None:  # elsewhere (and as a second line on Linux)
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="streamae-parent-watch", daemon=True).start()


_denoiser: Denoiser | None = None  # one per worker process


def _init_worker(make_denoiser) -> None:
    global _denoiser
    _denoiser = make_denoiser()


def _clean_one(job: Job) -> Outcome:
    try:
        try:
            job.target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise os_error(e, job.target.parent) from None
        result = denoise_file(_denoiser, job.source, job.target, overwrite=True, clear_stale=False)
        return Outcome(job, "done", audio_seconds=result.audio_seconds, warnings=result.warnings)
    except StreamaeError as e:
        return Outcome(job, "failed", str(e).removeprefix(f"{e.path}: ") if e.path else str(e))
    except OSError as e:
        return Outcome(job, "failed", f"{os_reason(e)}" + (f" ({e.filename})" if e.filename else ""))
    except Exception as e:  # one bad file must not stop the batch; report it
        return Outcome(job, "failed", f"{type(e).__name__}: {e}")


class Progress:
    """One status line (rewritten in place on a terminal): files, audio hours, speed."""

    def __init__(self, total: int, stream=sys.stderr):
        self.total, self.stream = total, stream
        self.count = {"done": 0, "skipped": 0, "failed": 0}
        self.audio = 0.0
        self.started = time.perf_counter()
        self.tty = stream.isatty()
        self._last = self.started

    def interrupted(self) -> None:
        """After Ctrl-C: how far it got, and how to finish."""
        if self.tty:
            self.stream.write("\n")
        self.stream.write(f"denoise: stopped after {sum(self.count.values())} of {self.total} files; "
                          "the same command finishes the rest\n")
        self.stream.flush()

    def __call__(self, outcome: Outcome) -> None:
        self.count[outcome.status] += 1
        self.audio += outcome.audio_seconds
        if outcome.status == "failed":
            self._print(f"failed: {outcome.job.source}: {outcome.reason}", final=True)
        for warning in outcome.warnings:
            self._print(f"warning: {outcome.job.source}: {warning}", final=True)
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
