"""Real-time block worker: audio callbacks on one side, a model on its own thread on the other.

    audio callback --push()--> FrameRing --> worker thread: process_block(block)
                                                               --> BlockRing --pull()--> callback

The callback side (`push`, `pull`, `process`) never waits and never runs the model: it copies
into and out of preallocated rings. The worker thread cuts the input into fixed blocks and
runs `process_block` on each. If it falls behind, nothing queues up: a block whose output
deadline has passed is not processed (counted as skipped) and its output slot goes out as the
input delayed by the model's latency (counted as passthrough), so output stays exactly as long
as input, keeps its fixed delay and memory never grows.

Three uses, one class:
- live denoising (duplex): `worker.process(indata, outdata)` in the device callback;
- analysis without output (e.g. an anomaly scorer): `BlockWorker(score, ..., output=False)`,
  `worker.push(indata)` in the input callback; `process_block` returns None;
- files, as fast as possible and lossless: `lossless=True`, `feed()` / `finish()` / `read()`,
  which wait instead of dropping.

Thread safety relies on one writer per ring and CPython's atomic attribute/list-item stores:
a reader re-checks after copying that the writer did not overwrite what it copied.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

ProcessBlock = Callable[[np.ndarray], Optional[np.ndarray]]


class FrameRing:
    """The most recent `capacity` frames of a signal, addressed by absolute frame index.

    One writer; any reader. Frames before index 0 read as silence.
    """

    def __init__(self, capacity: int, channels: int):
        self.capacity = int(capacity)
        self.buf = np.zeros((self.capacity, channels), np.float32)
        self.end = 0  # frames fully written
        self._claimed = 0  # frames being written; readers compare against it to detect overwrites

    def write(self, frames: np.ndarray) -> None:
        n = len(frames)
        if n > self.capacity:
            frames = frames[-self.capacity:]
        self._claimed = self.end + n
        self._copy_in(self._claimed - len(frames), frames)
        self.end = self._claimed

    def oldest(self) -> int:
        """First frame index still readable."""
        return max(0, self._claimed - self.capacity)

    def read(self, start: int, out: np.ndarray) -> bool:
        """Copy frames [start, start+len(out)) into `out`; False if they are not (or no longer) there."""
        n = len(out)
        if start + n > self.end:
            return False
        if start < 0:
            lead = min(-start, n)
            out[:lead] = 0.0
            return self.read(0, out[lead:]) if lead < n else True
        i = start % self.capacity
        first = min(n, self.capacity - i)
        out[:first] = self.buf[i:i + first]
        out[first:] = self.buf[:n - first]
        return start >= self._claimed - self.capacity  # re-checked after the copy

    def _copy_in(self, start: int, frames: np.ndarray) -> None:
        i, n = start % self.capacity, len(frames)
        first = min(n, self.capacity - i)
        self.buf[i:i + first] = frames[:first]
        self.buf[:n - first] = frames[first:]


class BlockRing:
    """Fixed-size processed blocks tagged with their block index: a slot is valid only for its tag."""

    def __init__(self, capacity: int, block_frames: int, channels: int):
        self.capacity = int(capacity)
        self.buf = np.zeros((self.capacity, block_frames, channels), np.float32)
        self.tags = [-1] * self.capacity

    def put(self, index: int, block: np.ndarray) -> None:
        slot = index % self.capacity
        self.tags[slot] = -1  # invalidate before overwriting, so a reader never takes a torn block
        self.buf[slot] = block
        self.tags[slot] = index

    def has(self, index: int) -> bool:
        return self.tags[index % self.capacity] == index

    def get(self, index: int, out: np.ndarray) -> bool:
        slot = index % self.capacity
        if self.tags[slot] != index:
            return False
        out[:] = self.buf[slot]
        return self.tags[slot] == index


@dataclass(frozen=True)
class WorkerStats:
    """Counters since start. `xruns` is what a listener would notice."""

    blocks_in: int  # whole blocks received
    processed: int  # blocks process_block ran on
    skipped: int  # blocks never given to process_block: the worker was too far behind
    passthrough: int  # output blocks that went out unprocessed (input delayed by the latency)
    device_xruns: int  # over/underflows the audio device reported (see note_device_xrun)
    busy_seconds: float  # wall time inside process_block
    block_seconds: float  # duration of one block

    @property
    def rtf(self) -> float:
        """Real-time factor: seconds of compute per second of audio processed (< 1 keeps up)."""
        return self.busy_seconds / max(self.processed * self.block_seconds, 1e-12)

    @property
    def xruns(self) -> int:
        return self.skipped + self.passthrough + self.device_xruns

    def line(self) -> str:
        return (f"rtf {self.rtf:.3f}, blocks {self.processed}/{self.blocks_in}, skipped {self.skipped}, "
                f"passthrough {self.passthrough}, device xruns {self.device_xruns}")


class BlockWorker:
    """Runs `process_block` on fixed-size blocks of a live signal, on its own thread.

    process_block: float32 [channels, block_frames] -> same shape (output=True), or None.
        It runs on the worker thread only, one call at a time, blocks in order (minus skips).
        Its output must lag its input by a fixed `latency_frames` (a DenoiserStream does),
        so passthrough blocks can be delayed by the same amount and stay aligned.
    slack_blocks: output deadline, in blocks: `pull` returns the output of a block this many
        blocks after the block arrived; the worker has that long to process it. Adds
        slack_blocks * block_frames of latency; 1 is the minimum.
    history_seconds: input kept; without output, how far the worker may fall behind before
        it skips blocks.
    """

    def __init__(self, process_block: ProcessBlock, block_frames: int, channels: int = 1, *,
                 sample_rate: int, latency_frames: int = 0, slack_blocks: int = 2, output: bool = True,
                 lossless: bool = False, history_seconds: float = 2.0):
        if block_frames <= 0 or slack_blocks < 1:
            raise ValueError("block_frames must be positive and slack_blocks at least 1")
        self.process_block = process_block
        self.block_frames = N = int(block_frames)
        self.channels = channels
        self.sample_rate = int(sample_rate)
        self.latency_frames = int(latency_frames)
        self.slack_blocks = int(slack_blocks)
        self.output = output
        self.lossless = lossless
        need = (self.slack_blocks + 8) * N + self.latency_frames
        frames = max(need, int(history_seconds * self.sample_rate))
        self._in = FrameRing(-(-frames // N) * N, channels)
        self._out = BlockRing(self.slack_blocks + 8, N, channels) if output else None
        self._block = np.zeros((N, channels), np.float32)  # worker-thread scratch
        self._cb_block = np.zeros((N, channels), np.float32)  # callback-thread scratch
        self._next = 0  # next block the worker looks at
        self._pulled = 0  # output frames handed out by pull()
        self._read = 0  # blocks handed out by read() (lossless)
        self._last_dry = -1
        self._counts = {"processed": 0, "skipped": 0, "passthrough": 0, "device_xruns": 0}
        self._busy = 0.0
        self._wake = threading.Event()
        self._cv = threading.Condition()  # lossless waits only; the real-time side never takes it
        self._eof = False
        self._stop = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="streamae-worker", daemon=True)

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> "BlockWorker":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop = True
        self._wake.set()
        with self._cv:
            self._cv.notify_all()
        if self._thread.is_alive():
            self._thread.join()

    def __enter__(self) -> "BlockWorker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def delay_frames(self) -> int:
        """Output lag behind input through `pull`: model latency + deadline slack."""
        return self.latency_frames + (0 if self.lossless else self.slack_blocks * self.block_frames)

    @property
    def stats(self) -> WorkerStats:
        c = self._counts
        return WorkerStats(self._in.end // self.block_frames, c["processed"], c["skipped"], c["passthrough"],
                           c["device_xruns"], self._busy, self.block_frames / self.sample_rate)

    def note_device_xrun(self) -> None:
        """Count an over/underflow the audio API reported (e.g. a sounddevice CallbackFlags)."""
        self._counts["device_xruns"] += 1

    # -- real-time side: call from the audio callback; never waits ---------------------------
    def push(self, frames: np.ndarray) -> None:
        """Input frames, float32 [n, channels] (sounddevice layout), any n."""
        self._in.write(frames)
        self._wake.set()

    def pull(self, out: np.ndarray) -> None:
        """Fill `out` [n, channels] with the next n output frames: processed if ready, else passthrough."""
        N, n = self.block_frames, len(out)
        src = self._pulled - self.slack_blocks * N  # processed-timeline frame of out[0]
        done = 0
        while done < n:
            idx = src + done
            b, off = divmod(idx, N)
            seg = min(N - off, n - done)
            if b < 0:
                out[done:done + seg] = 0.0
            elif self._out.get(b, self._cb_block):
                out[done:done + seg] = self._cb_block[off:off + seg]
            else:
                if not self._in.read(idx - self.latency_frames, out[done:done + seg]):
                    out[done:done + seg] = 0.0
                if b != self._last_dry:
                    self._last_dry = b
                    self._counts["passthrough"] += 1
            done += seg
        self._pulled += n

    def process(self, indata: np.ndarray, outdata: np.ndarray) -> None:
        """A duplex callback's body: push `indata`, fill `outdata` (same frame count)."""
        self.push(indata)
        self.pull(outdata)

    # -- lossless side (files): waits instead of dropping ------------------------------------
    def feed(self, frames: np.ndarray) -> None:
        """Like push, but waits while the worker is `history_seconds` behind."""
        frames = np.asarray(frames, np.float32).reshape(-1, self.channels)
        step = self._in.capacity - self.block_frames
        for start in range(0, len(frames), step):
            part = frames[start:start + step]
            with self._cv:
                self._cv.wait_for(
                    lambda: (
                        self._stop
                        or self.error is not None
                        or self._in.end + len(part) - self._next * self.block_frames <= self._in.capacity
                    )
                )
            self.check()
            if self._stop:
                return
            self.push(part)

    def finish(self) -> None:
        """End of input: pad the last partial block with silence so it gets processed too."""
        tail = -self._in.end % self.block_frames
        if tail:
            self.feed(np.zeros((tail, self.channels), np.float32))
        self._eof = True
        self._wake.set()

    def read(self) -> np.ndarray | None:
        """The next processed block [block_frames, channels], in order; None after finish()."""
        with self._cv:
            self._cv.wait_for(lambda: self._out.has(self._read) or self.error is not None or
                              (self._eof and self._next * self.block_frames >= self._in.end))
        self.check()
        out = np.empty((self.block_frames, self.channels), np.float32)
        if not self._out.get(self._read, out):
            return None
        self._read += 1
        with self._cv:
            self._cv.notify_all()
        return out

    # -- worker thread ----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop:
                self._wake.wait(0.05)
                self._wake.clear()
                while not self._stop and (self._next + 1) * self.block_frames <= self._in.end:
                    self._step()
        except BaseException as e:  # handed to whoever reads; the callback keeps passing audio through
            self.error = e
        finally:
            with self._cv:
                self._cv.notify_all()

    def _step(self) -> None:
        N = self.block_frames
        first = self._first_useful_block()
        if first > self._next:
            self._counts["skipped"] += first - self._next
            self._next = first
            return
        k = self._next
        if not self._in.read(k * N, self._block):  # overwritten while copying
            self._counts["skipped"] += 1
            self._next = k + 1
            return
        started = time.perf_counter()
        y = self.process_block(self._block.T)
        self._busy += time.perf_counter() - started
        if self.output:
            if y is None or np.shape(y) != (self.channels, N):
                raise ValueError(f"process_block returned shape {np.shape(y)}, expected {(self.channels, N)}")
            if self.lossless:
                with self._cv:
                    self._cv.wait_for(lambda: self._stop or k - self._read < self._out.capacity)
            self._out.put(k, np.asarray(y, np.float32).T)
        self._next = k + 1
        self._counts["processed"] += 1
        if self.lossless:
            with self._cv:
                self._cv.notify_all()

    def _first_useful_block(self) -> int:
        """Blocks before this one are lost from the ring or already past their output deadline."""
        if self.lossless:
            return self._next
        N, oldest = self.block_frames, self._in.oldest()
        first = oldest // N + 2 if oldest else 0  # one block of guard against the writer
        if self.output:
            first = max(first, (self._pulled - self.slack_blocks * N) // N)
        return first

    def check(self) -> None:
        """Re-raise, on the caller's thread, an exception process_block raised on the worker thread."""
        if self.error is not None:
            raise self.error
