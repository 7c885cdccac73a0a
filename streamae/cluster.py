"""Batch denoising on a Ray cluster: the local batch's per-file work, spread over Ray workers.

Each worker is a Ray actor that builds its model once and cleans one file at a time with the
very function the local batch uses (streamae.denoise._clean_one: same samples, formats, atomic
writes). The driver plans the jobs, skips finished files, keeps at most two files queued per
worker (the archive streams through; nothing is held in memory but the paths) and reports each
outcome as it comes. A worker that dies mid-file is restarted by Ray and the file retried: its
output is published by an atomic rename only when complete, so nothing is lost or doubled; the
dead worker's temporary file is removed at the end of the run (and by any later run).

Inputs and outputs must be on storage every node sees at the same path (a shared filesystem);
paths are made absolute before they are sent. Ray is imported only here, only when asked for
(pip install 'streamae[cluster]').
"""
from __future__ import annotations

import logging
import os
import socket
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

from .audio import remove_stale_partials_in
from .denoise import Job, Outcome, _clean_one, _init_worker, split_done
from .denoiser import Denoiser
from .errors import StreamaeError

INSTALL_HINT = "--ray needs the cluster extra: pip install 'streamae[cluster]'"
QUEUED_PER_WORKER = 2  # files sent ahead to each worker, so none waits on the driver
TASK_RETRIES = 2  # a file whose worker died is tried this many more times


def import_ray():
    try:
        import ray
    except ImportError:
        raise StreamaeError(INSTALL_HINT) from None
    return ray


def connect(address: str | None, num_cpus: int | None = None):
    """Join the cluster at `address` (host:port, ray://host:port, or "auto": the one `ray start`
    began on this machine); None: RAY_ADDRESS, else a local cluster of `num_cpus` CPUs started for
    this run (stopped by `disconnect`). Returns the ray module."""
    ray = import_ray()
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address not in (None, "auto", "local"):
        _check_reachable(address)
    options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                   configure_logging=True)
    try:
        if address is None:
            ray.init(address="local", num_cpus=num_cpus, **options)
        else:
            ray.init(address=address, **options)
    except Exception as e:  # ConnectionError, ValueError for a bad address, RuntimeError, ...
        where = f"at {address}" if address else "(a local one)"
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise StreamaeError(f"cannot reach the Ray cluster {where}: {reason}") from None
    return ray


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """One clear line, in seconds, where nothing listens at host:port (Ray itself retries for minutes)."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise StreamaeError(f"cannot reach the Ray cluster at {address}: give host:port or ray://host:port")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        reason = os.strerror(e.errno) if e.errno else (str(e) or type(e).__name__)
        raise StreamaeError(f"cannot reach the Ray cluster at {address}: {reason}") from None


def disconnect(ray) -> None:
    """Leave the cluster; a local one started by `connect` stops."""
    ray.shutdown()


@contextmanager
def session(address: str | None, jobs: int | None, items: int,
            gpu: bool = False) -> Iterator[tuple[object, int]]:
    """A command's time on the cluster (see `connect`): yields ray and how many workers to start,
    `jobs` or one per CPU (per GPU with `gpu`), never more than the cluster has room for (more
    actors than room would wait forever) nor than `items`."""
    ray = connect(address, num_cpus=jobs)
    try:
        room = _room(ray, gpu)
        yield ray, max(1, min(jobs or room, room, items))
    finally:
        disconnect(ray)


def _room(ray, gpu: bool) -> int:
    """GPU workers on a cluster without a GPU would wait for one forever: that is an error."""
    room = int(ray.cluster_resources().get("GPU" if gpu else "CPU", 0))
    if gpu and room < 1:
        raise StreamaeError("--device cuda: no node of the Ray cluster has a GPU")
    return max(1, room)


class _Worker:
    """One Ray actor: a model (or any state) made once, then items one at a time."""

    def __init__(self, make: Callable[[], object], init: Callable, work: Callable):
        self.work = work
        try:
            self.state = init(make)
        except Exception as e:  # every item then fails with the reason, as in the local pool
            self.failure = str(e) if isinstance(e, StreamaeError) else f"{type(e).__name__}: {e}"
        else:
            self.failure = None

    def run(self, item):
        if self.failure:
            raise WorkerFailed(self.failure)
        return self.work(self.state, item)


class WorkerFailed(Exception):
    """A worker could not build its model: the reason, for every item it was given."""


def map_on_ray(ray, items: list, make: Callable[[], object], init: Callable, work: Callable,
               workers: int, gpu: bool = False) -> Iterator[tuple[int, object]]:
    """(index, work(state, item)) for each item as it finishes, on `workers` actors that each run
    state = init(make) once; a result is an Exception where the worker failed to start or died
    more often than Ray retries. At most QUEUED_PER_WORKER items wait on each worker, so a long
    list streams. The actors are killed at the end, and on Ctrl-C (which propagates)."""
    if not items:
        return
    remote = ray.remote(_Worker).options(
        num_cpus=1, num_gpus=1 if gpu else 0, max_restarts=-1, max_task_retries=TASK_RETRIES,
    )
    actors = [remote.remote(make, init, work) for _ in range(min(workers, len(items)))]
    pending: dict = {}  # object ref -> (index into items, actor)
    queued = {i: 0 for i in range(len(actors))}
    following = 0
    try:
        while following < len(items) or pending:
            for a in sorted(queued, key=queued.get):  # fill the least-queued workers first
                while following < len(items) and queued[a] < QUEUED_PER_WORKER:
                    pending[actors[a].run.remote(items[following])] = (following, a)
                    queued[a] += 1
                    following += 1
            ready, _ = ray.wait(list(pending), num_returns=1)
            i, a = pending.pop(ready[0])
            queued[a] -= 1
            try:
                result = ray.get(ready[0])
            except ray.exceptions.RayTaskError as e:  # raised by the work itself
                cause = getattr(e, "cause", None) or e
                result = WorkerFailed(f"{type(cause).__name__}: {cause}")
            except ray.exceptions.RayError as e:  # the worker died more often than Ray retries
                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                result = WorkerFailed(f"the Ray worker died ({reason})")
            yield i, result
    finally:
        for actor in actors:
            ray.kill(actor)


def keep(make: Callable[[], object]) -> object:
    """The usual `init` for map_on_ray: the worker's state is what `make()` builds."""
    return make()


def _clean_on_worker(state, job: Job) -> Outcome:
    return _clean_one(job)


def run_batch_ray(ray, jobs: list[Job], make_denoiser: Callable[[], Denoiser], workers: int,
                  overwrite: bool = False, progress: Callable[[Outcome], None] | None = None,
                  gpu: bool = False) -> list[Outcome]:
    """Clean every job on `workers` Ray actors (connected `ray`); like streamae.denoise.run_batch,
    never raises for one file. Ctrl-C kills the actors and propagates; the next run removes what
    they were writing."""
    todo, outcomes = split_done(jobs, overwrite)
    report = progress or (lambda outcome: None)
    for o in outcomes:
        report(o)
    absolute = [Job(Path(os.path.abspath(j.source)), Path(os.path.abspath(j.target))) for j in todo]
    for i, result in map_on_ray(ray, absolute, make_denoiser, _init_worker, _clean_on_worker, workers, gpu):
        if isinstance(result, Outcome):
            outcome = replace(result, job=todo[i])
        else:
            reason = str(result) if isinstance(result, WorkerFailed) else f"{type(result).__name__}: {result}"
            outcome = Outcome(todo[i], "failed", reason)
        outcomes.append(outcome)
        report(outcome)
    # a worker killed mid-file left its temporary file; its output was retried elsewhere
    for folder in {job.target.parent for job in todo}:
        remove_stale_partials_in(folder)
    return outcomes
