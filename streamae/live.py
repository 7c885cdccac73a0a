"""Live audio: microphone (or a file paced like one) -> BlockWorker -> speakers and/or a file.

sounddevice is imported only when a device is opened, so file-only use needs no PortAudio.
`listen()` is the entry point for analysis without output (e.g. the anomaly monitor).
"""
from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .audio import AtomicAudioWriter, open_input, output_format, read_blocks
from .denoiser import Denoiser, DenoiserStream
from .errors import StreamaeError
from .worker import BlockWorker, FrameRing, ProcessBlock

CHUNK_MS = 10.0  # the block the model cleans at a time
BUFFER_CHUNKS = 2  # chunks the model may take before its output is due
STALL_SECONDS = 3.0  # no input for this long: the device stream is dead, say so instead of hanging
SWITCH_INTERVAL_S = 0.001  # the GIL hand-over the audio callback may wait for (CPython's default: 5 ms)


# -- devices --------------------------------------------------------------------------------
def sounddevice():
    """The sounddevice module, or a one-line error saying what to install."""
    try:
        import sounddevice as sd
    except ImportError:
        raise StreamaeError("live audio needs sounddevice: pip install 'streamae[live]'") from None
    except OSError:
        raise StreamaeError("live audio needs the PortAudio library: apt-get install libportaudio2") from None
    return sd


def device_table() -> str:
    """The devices PortAudio sees, one a line; none at all is an error saying what to check."""
    devices = sounddevice().query_devices()
    if len(devices) == 0:
        raise StreamaeError("no audio devices found (is a sound card or a sound server such as PulseAudio "
                            "or PipeWire available to this user?)")
    return str(devices)


def resolve_device(spec: str | int | None, kind: str) -> int:
    """A device index from an index, a (part of a) name, or None for the default `kind` device."""
    sd = sounddevice()
    key = "max_input_channels" if kind == "input" else "max_output_channels"
    devices = [(i, d) for i, d in enumerate(sd.query_devices()) if d[key] > 0]
    listing = "; ".join(f"{i} '{d['name']}'" for i, d in devices) or "none"
    if spec is None or spec == "":
        index = sd.default.device[0 if kind == "input" else 1]
        if index is None or index < 0:
            if not devices:
                raise StreamaeError(f"no {kind} device found (is a sound server or card available?)")
            index = devices[0][0]
        return int(index)
    if str(spec).strip().isdigit():
        if int(spec) in {i for i, _ in devices}:
            return int(spec)
        raise StreamaeError(f"no {kind} device with index {spec}; {kind} devices: {listing}")
    matches = [i for i, d in devices if str(spec).lower() == d["name"].lower()] or \
              [i for i, d in devices if str(spec).lower() in d["name"].lower()]
    if len(matches) == 1:
        return matches[0]
    why = "is ambiguous" if matches else "not found"
    raise StreamaeError(f"{kind} device '{spec}' {why}; {kind} devices: {listing}")


def device_name(index: int) -> str:
    return str(sounddevice().query_devices(index)["name"])


def device_rate(index: int) -> int:
    """The rate a device runs at by itself. Asked for another, an audio server converts with its own
    resampler (PulseAudio's default, speex-float-1, rolls off from about 5.5 kHz)."""
    return int(sounddevice().query_devices(index)["default_samplerate"])


def _count_device_xruns(worker: BlockWorker, status) -> None:
    if status and (status.input_overflow or status.output_underflow or status.input_underflow
                   or status.output_overflow):
        worker.note_device_xrun()


@contextmanager
def listen(process_block: ProcessBlock, *, sample_rate: int | None = None, block_frames: int | None = None,
           channels: int = 1, device: str | int | None = None, history_seconds: float = 2.0
           ) -> Iterator[BlockWorker]:
    """Microphone blocks into `process_block` on a worker thread; no output.

    process_block gets float32 [channels, block_frames] (default 10 ms) at `sample_rate`
    (default: the device's) and returns nothing. It may fall up to `history_seconds` behind
    before blocks are skipped (counted in `worker.stats.skipped`). While inside the `with`,
    call `worker.check()` now and then to re-raise an error from process_block.

    >>> with listen(score, sample_rate=16000, block_frames=16000) as worker:
    ...     while True: time.sleep(1); worker.check(); print(worker.stats.line())
    """
    sd = sounddevice()
    index = resolve_device(device, "input")
    rate = sample_rate or device_rate(index)
    frames = int(block_frames or rate // 100)
    worker = BlockWorker(process_block, frames, channels, sample_rate=rate, output=False,
                         history_seconds=max(history_seconds, 2 * frames / rate))

    def callback(indata, n, time_info, status):
        _count_device_xruns(worker, status)
        worker.push(indata)

    stream = _open(
        sd.InputStream,
        device=index,
        samplerate=rate,
        channels=channels,
        blocksize=min(frames, rate // 100),
        callback=callback,
    )
    with worker, stream:
        yield worker


def _open(kind, **kw):
    try:
        return kind(dtype="float32", latency="low", **kw)
    except Exception as e:  # PortAudioError and ValueError carry the useful text
        try:
            table = device_table()
        except StreamaeError as none:
            table = str(none)
        raise StreamaeError(f"cannot open audio device ({e}); devices:\n{table}") from None


# -- recording ------------------------------------------------------------------------------
class Recorder:
    """Frames from the audio callback to a file: the callback only copies into a ring; a
    thread writes. Exactly `limit` frames (or all) are written; frames the disk lost are silence.

    If the file cannot be written (a full disk, say), the thread stops, `check()` raises the
    error and `close()` drops the file and raises it: a short recording is never published.
    """

    def __init__(self, path: Path, sample_rate: int, channels: int, fmt: str, subtype: str,
                 limit: int | None = None, buffer_seconds: float = 5.0):
        self.ring = FrameRing(int(buffer_seconds * sample_rate), channels)
        self.limit = limit
        self.lost = 0
        self.written = 0
        self.error: BaseException | None = None
        self._writer = AtomicAudioWriter(path, sample_rate, channels, fmt, subtype)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._drain_loop, name="streamae-recorder", daemon=True)
        self._thread.start()

    def write(self, frames: np.ndarray) -> None:
        """Callback-safe."""
        self.ring.write(frames)

    def full(self) -> bool:
        return self.limit is not None and self.ring.end >= self.limit

    def check(self) -> None:
        """Raise the writer thread's error, if it had one."""
        if self.error is not None:
            raise self.error

    def close(self, ok: bool = True) -> None:
        """Write what is left and commit the file (or, if not ok or the writing failed, drop it)."""
        self._done.set()
        self._thread.join()
        if ok and self.error is None:
            self._writer.commit()
        else:
            self._writer.discard()
            self.check()

    def _drain_loop(self) -> None:
        try:
            while not self._done.wait(0.05):
                self._drain()
            self._drain()
        except StreamaeError as e:
            self.error = e
        except Exception as e:  # anything else: still never a thread traceback and a short file
            self.error = StreamaeError(f"cannot write the recording ({type(e).__name__}: {e})",
                                       self._writer.path)

    def _drain(self) -> None:
        end = self.ring.end if self.limit is None else min(self.ring.end, self.limit)
        while self.written < end:
            n = min(end - self.written, self.ring.capacity // 4)
            block = np.empty((n, self.ring.buf.shape[1]), np.float32)
            if not self.ring.read(self.written, block):
                block[:] = 0.0
                self.lost += n
            self._writer.write(block.T)
            self.written += n


# -- sessions -------------------------------------------------------------------------------
def run_devices(
    load_denoiser: Callable[[], Denoiser],
    *,
    input_device: str | int | None = None,
    output_device: str | int | None = None,
    record: str | Path | None = None,
    duration_s: float | None = None,
    rate: int | None = None,
    channels: int = 1,
    chunk_ms: float = CHUNK_MS,
    callback_ms: float | None = None,
    buffer_chunks: int = BUFFER_CHUNKS,
    rt_priority: int = 0,
    stats_every_s: float = 0.0,
) -> None:
    """Microphone -> denoiser -> output device and/or `record` file, until `duration_s` or Ctrl-C.

    Plays to `output_device` (default: the system's) unless only recording. The device buffer
    per callback is `callback_ms` (default: `chunk_ms`; 0: the device's choice)."""
    sd = sounddevice()
    if rt_priority:
        raise_priority(rt_priority)  # before any audio thread starts: they inherit it
    in_index = resolve_device(input_device, "input")
    play = output_device is not None or not record
    out_index = resolve_device(output_device, "output") if play else None
    denoiser = load_denoiser()
    rate = rate or device_rate(in_index)
    stream, worker = _worker_for(denoiser, rate, channels, chunk_ms, buffer_chunks)
    limit = int(duration_s * rate) if duration_s else None
    recorder: Recorder | None = None  # created last: nothing may fail between it and its close()
    scratch = [np.zeros((worker.block_frames * 8, channels), np.float32)]

    def callback(indata, *rest):
        if not play and len(indata) > len(scratch[0]):
            scratch[0] = np.zeros((len(indata), channels), np.float32)
        outdata = rest[0] if play else scratch[0][:len(indata)]
        _count_device_xruns(worker, rest[-1])
        worker.process(indata, outdata)
        if recorder:
            recorder.write(outdata)

    callback_ms = chunk_ms if callback_ms is None else callback_ms
    common = dict(samplerate=rate, blocksize=round(callback_ms * rate / 1000), callback=callback)
    if play:
        audio = _open(sd.Stream, device=(in_index, out_index), channels=channels,
                      prime_output_buffers_using_stream_callback=True, **common)
    else:
        audio = _open(sd.InputStream, device=in_index, channels=channels, **common)
    device_ms = 1000 * (sum(audio.latency) if play else audio.latency)
    names = device_name(in_index) + (
        f" -> {device_name(out_index)}" if play else ""
    )
    _print_latency(names, denoiser, stream, worker, device_ms, device=True)
    if record:
        fmt, subtype = output_format(record)
        recorder = Recorder(Path(record), rate, channels, fmt, subtype, limit=limit)
    _run_until_done(worker, audio, recorder, limit, stats_every_s)


def run_file(denoiser: Denoiser, input_file: str | Path, record: str | Path, *, realtime: bool = False,
             duration_s: float | None = None, chunk_ms: float = CHUNK_MS, buffer_chunks: int = BUFFER_CHUNKS,
             stats_every_s: float = 0.0) -> None:
    """`input_file` through the same worker into `record`: paced like a device (`realtime`) or
    lossless, as fast as possible."""
    with open_input(input_file) as f:
        rate, channels, frames = f.samplerate, f.channels, f.frames
        stream, worker = _worker_for(denoiser, rate, channels, chunk_ms, buffer_chunks, lossless=not realtime)
        fmt, subtype = output_format(record, like=f)
        limit = min(frames, int(duration_s * rate)) if duration_s else frames
        recorder = Recorder(Path(record), rate, channels, fmt, subtype, limit=limit)
        blocks = read_blocks(f, worker.block_frames)
        ok = False
        try:
            _print_latency(f"{input_file} ({'real time' if realtime else 'as fast as possible'})",
                           denoiser, stream, worker, 0.0, device=False)
            with worker:
                if realtime:
                    _pace(worker, recorder, blocks, rate, limit, stats_every_s)
                else:
                    _lossless(worker, recorder, blocks, limit)
            ok = True
        finally:
            recorder.close(ok)
    _print_summary(worker, recorder)


def _worker_for(denoiser: Denoiser, rate: int, channels: int, chunk_ms: float, buffer_chunks: int,
                lossless: bool = False) -> tuple[DenoiserStream, BlockWorker]:
    stream = denoiser.stream(rate, channels=channels)
    stream.process(np.zeros((channels, rate // 10), np.float32))  # warm up onnxruntime: the first
    stream.reset()  # call is slow and would miss its deadline
    block = max(1, round(chunk_ms * rate / 1000))
    worker = BlockWorker(stream.process, block, channels, sample_rate=rate,
                         latency_frames=stream.latency_samples, slack_blocks=buffer_chunks, lossless=lossless)
    return stream, worker


def raise_priority(priority: int) -> None:
    """SCHED_FIFO for this thread and the threads it starts (worker, PortAudio's callback), so
    other busy processes cannot delay the audio; needs root or an rtprio limit."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (AttributeError, PermissionError, OSError) as e:
        print(f"live: cannot raise priority ({e}); running at normal priority", file=sys.stderr)


def _run_until_done(
    worker: BlockWorker, audio, recorder: Recorder | None, limit: int | None, stats_every: float
) -> None:
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    ok = False
    try:
        with worker, audio:
            _wait(worker, recorder, limit, stats_every)
        ok = True
    finally:
        if recorder:
            recorder.close(ok)
    _print_summary(worker, recorder)


def _wait(worker: BlockWorker, recorder: Recorder | None, limit: int | None, stats_every: float) -> None:
    """Until the recording is long enough (or --duration passed) or Ctrl-C; stats every few seconds."""
    next_stats = time.monotonic() + stats_every if stats_every else float("inf")
    running = False
    seen, seen_at = 0, time.monotonic()
    try:
        while True:
            if not running and worker.stats.blocks_in:
                running = True
                print("live: running" + ("" if limit else ", Ctrl-C stops"), file=sys.stderr, flush=True)
            time.sleep(0.02)
            worker.check()
            if recorder:
                recorder.check()
            if worker.stats.blocks_in != seen:
                seen, seen_at = worker.stats.blocks_in, time.monotonic()
            elif time.monotonic() - seen_at > STALL_SECONDS:
                raise StreamaeError(
                    f"the input device delivered no audio for {STALL_SECONDS:.0f} s (PortAudio's "
                    "ALSA duplex stalls with some buffer sizes: try another --callback-ms or --rate)"
                )
            if limit is not None and (
                recorder.full() if recorder else worker.stats.blocks_in * worker.block_frames >= limit
            ):
                return
            if time.monotonic() >= next_stats:
                print(f"live: {worker.stats.line()}", file=sys.stderr, flush=True)
                next_stats += stats_every
    except KeyboardInterrupt:
        print("live: stopped", file=sys.stderr)


def _pace(worker: BlockWorker, recorder: Recorder, blocks: Iterator[np.ndarray], rate: int, limit: int,
          stats_every: float) -> None:
    """Play the file's blocks into the worker on a device-like clock (the callback's job)."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    out = np.zeros((worker.block_frames, worker.channels), np.float32)
    started = time.perf_counter()
    next_stats = stats_every or float("inf")
    fed = 0
    for block in blocks:
        x = np.pad(block.T, ((0, worker.block_frames - block.shape[1]), (0, 0)))
        worker.process(x, out)
        recorder.write(out)
        fed += len(x)
        if fed >= limit:
            break
        worker.check()
        recorder.check()
        if fed / rate >= next_stats:
            print(f"live: {worker.stats.line()}", file=sys.stderr, flush=True)
            next_stats += stats_every
        time.sleep(max(0.0, started + fed / rate - time.perf_counter()))


def _lossless(worker: BlockWorker, recorder: Recorder, blocks: Iterator[np.ndarray], limit: int) -> None:
    failed: list[BaseException] = []

    def feed() -> None:
        try:
            fed = 0
            for block in blocks:
                if fed >= limit:
                    break
                worker.feed(block.T)
                fed += block.shape[1]
        except BaseException as e:
            failed.append(e)
        finally:
            worker.finish()

    feeder = threading.Thread(target=feed, name="streamae-feeder", daemon=True)
    feeder.start()
    try:
        while (out := worker.read()) is not None:
            recorder.write(out)
            if recorder.full():
                break
            recorder.check()
            while recorder.ring.end - recorder.written > recorder.ring.capacity // 2:
                recorder.check()  # a writer that failed never catches up
                time.sleep(0.01)  # let the writer thread catch up: lossless means never overwrite
    finally:
        worker.stop()
        feeder.join()
    if failed:
        raise failed[0]


def _print_latency(
    names: str,
    denoiser: Denoiser,
    stream: DenoiserStream,
    worker: BlockWorker,
    device_ms: float,
    device: bool,
) -> None:
    rate = stream.sample_rate
    model_ms = 1000 * denoiser.latency_samples / denoiser.sample_rate
    resample_ms = stream.latency_ms - model_ms
    buffer_ms = 1000 * (worker.delay_frames - worker.latency_frames) / rate
    total = stream.latency_ms + buffer_ms + device_ms
    print(
        f"live: {names}, {rate} Hz, {stream.channels} ch, chunk {1000 * worker.block_frames / rate:.1f} ms; "
        f"latency {total:.1f} ms = model {model_ms:.1f} + resampling {resample_ms:.1f} "
        f"+ buffering {buffer_ms:.1f} + device {device_ms:.1f}",
        file=sys.stderr,
        flush=True,
    )
    if device and rate != denoiser.sample_rate:
        print(f"live: tip: --rate {denoiser.sample_rate} (if the device allows it) saves the "
              f"{resample_ms:.0f} ms of resampling", file=sys.stderr)


def _print_summary(worker: BlockWorker, recorder: Recorder | None) -> None:
    line = f"live: done: {worker.stats.line()}"
    if recorder:
        line += f"; recorded {recorder.written} frames" + (
            f" ({recorder.lost} lost)" if recorder.lost else ""
        )
    print(line, file=sys.stderr)
