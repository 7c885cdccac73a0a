"""`streamae monitor mic`: live input through the real-time worker the denoiser uses.

`streamae.live.listen` runs the audio callback and a `BlockWorker` thread; the monitor's
scoring (features, onnxruntime, alerts) runs on that worker thread, never in the callback,
and if it ever falls behind the worker skips blocks and counts them instead of queueing.
"""
from __future__ import annotations

import sys
import time

from ..errors import StreamaeError
from .monitor import Monitor

BLOCK_SECONDS = 0.1


def _live():
    try:
        from .. import live
    except ImportError as e:
        raise StreamaeError(f"monitor mic: live input is not available in this installation ({e})") from None
    return live


def monitor_mic(monitor: Monitor, input_device: str | int | None = None, duration_s: float | None = None,
                stats_every_s: float = 60.0) -> None:
    """Score the microphone until Ctrl-C (or `duration_s`); the caller closes the monitor."""
    live = _live()
    # the device's own rate, not the model's: the features convert it with soxr, which keeps the
    # top bands the model listens to where an audio server's resampler may dull them
    index = live.resolve_device(input_device, "input")
    rate = live.device_rate(index)
    print(f"streamae: mic: listening on {live.device_name(index)!r} at {rate} Hz "
          f"(the model's {monitor.model.features.sample_rate} Hz by soxr)", file=sys.stderr, flush=True)
    segment = monitor.segment(rate, 1, "mic")
    with live.listen(segment.process, sample_rate=rate, block_frames=int(BLOCK_SECONDS * rate),
                     channels=1, device=index, history_seconds=10.0) as worker:
        started = last_stats = time.monotonic()
        while duration_s is None or time.monotonic() - started < duration_s:
            time.sleep(0.2)
            worker.check()
            if time.monotonic() - last_stats > stats_every_s:
                print(f"streamae: mic: {worker.stats.line()}", file=sys.stderr, flush=True)
                last_stats = time.monotonic()
    segment.flush()
