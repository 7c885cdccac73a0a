#!/usr/bin/env python3
"""Numbers for docs/BENCHMARKS.md "Live and batch".

    python -m scripts.bench.bench_live_batch batch [--model M] [--jobs 2] [--files 16] [--seconds 60]
    python -m scripts.bench.bench_live_batch live  [--model M] [--seconds 60] [--chunk-ms 10]

batch: synthetic noisy speech files (48 kHz, 16-bit WAV) cleaned by `streamae denoise DIR
    --out-dir OUT --jobs N`; reports audio hours per wall hour (process start-up included).
live: a private PulseAudio (tests/support/pulse_loopback.py) with a virtual microphone ("mic") and
    speaker; `streamae live` runs for --seconds at 10 ms chunks, mic -> speaker. Meanwhile a
    probe process plays short bursts into "mic" and records either "speaker.monitor" (through
    streamae) or "mic.monitor" (calibration: the probe's own round trip). The difference of
    the two round trips is streamae's end-to-end latency, microphone signal to speaker signal.
    streamae runs with --atten-lim-db 0 (output = the input, mixed back at the device rate and
    delayed exactly like the cleaned signal; the model still runs) so bursts stay detectable
    whatever the model does to them. xruns are streamae's own count over the whole run.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
RATE = 48000


def speech_and_noise(seconds: float, seed: int) -> np.ndarray:
    from tests.support.signals import noise, speechlike

    return 0.8 * (speechlike(seconds, RATE, seed) + noise(seconds, RATE, seed + 1000))


# -- batch ----------------------------------------------------------------------------------
def bench_batch(args) -> None:
    import soundfile as sf

    root = Path(tempfile.mkdtemp(prefix="bench-batch-", dir=REPO / "runs"))
    src = root / "in"
    src.mkdir()
    for i in range(args.files):
        sf.write(src / f"take{i:02d}.wav", speech_and_noise(args.seconds, i), RATE, subtype="PCM_16")
    cmd = [sys.executable, "-m", "streamae", "denoise", str(src), "--out-dir", str(root / "out"),
           "--jobs", str(args.jobs)] + (["--model", args.model] if args.model else [])
    started = time.perf_counter()
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if r.returncode:
        sys.exit(r.stderr)
    hours = args.files * args.seconds / 3600
    print(r.stderr.strip().splitlines()[-1])
    print(f"batch: {args.files} files x {args.seconds:.0f} s (48 kHz 16-bit WAV), --jobs {args.jobs}: "
          f"{wall:.1f} s wall -> {hours / (wall / 3600):.0f} audio hours per wall hour")
    subprocess.run(["rm", "-rf", str(root)])


# -- live ----------------------------------------------------------------------------------
def bench_live(args) -> None:
    import soundfile as sf

    from tests.support.pulse_loopback import PulseLoopback

    clip = REPO / "runs" / "bench-live-clip.wav"
    sf.write(clip, speech_and_noise(args.seconds + 10, 7), RATE, subtype="FLOAT")  # one stream, no restarts
    with PulseLoopback(rate=RATE, rt_priority=args.rt_priority + 5 if args.rt_priority else 0) as pulse:
        # 1) xruns: --seconds of live cleaning while noisy speech plays into the microphone
        live, log = start_live(args, pulse.env, args.seconds)
        player = subprocess.Popen(
            f"while true; do paplay --device=mic {clip}; done",
            shell=True,
            env=pulse.env,
            start_new_session=True,
        )
        live.wait()
        os.killpg(player.pid, 15)
        player.wait()
        xrun_log = "".join(log)
        # 2) latency: probe bursts reach "speaker" directly and through mic -> streamae -> speaker
        pulse.pactl("load-module", "module-combine-sink", "sink_name=both", "slaves=mic,speaker",
                    f"rate={RATE}", "channels=1")
        live, log = start_live(args, pulse.env, 20)
        lags = []
        for _ in range(3):
            lags += probe_lags(pulse.env)
        live.terminate()
        live.wait()
    clip.unlink()
    print(
        f"xrun run ({args.seconds:.0f} s, {args.rate} Hz, chunk {args.chunk_ms} ms, callback "
        f"{args.callback_ms if args.callback_ms is not None else args.chunk_ms} ms, {args.buffer_chunks} "
        "buffer chunks"
        f"{f', --rt-priority {args.rt_priority}' if args.rt_priority else ''}): "
        + _found(r"live: done: [^\n]*", xrun_log)
    )
    print("reported: " + _found(r"latency [^\n]*", xrun_log))
    if lags:
        print(f"measured end to end (mic signal -> speaker signal, {len(lags)} bursts): median "
              f"{statistics.median(lags):.1f} ms, range {min(lags):.1f}-{max(lags):.1f} ms")


def _found(pattern: str, text: str) -> str:
    m = re.search(pattern, text)
    return m.group(0) if m else "(not found: " + text.strip().splitlines()[-1] + ")"


def start_live(args, env: dict, seconds: float):
    cmd = [
        sys.executable,
        "-m",
        "streamae",
        "live",
        "--rate",
        str(args.rate),
        "--chunk-ms",
        str(args.chunk_ms),
        "--buffer-chunks",
        str(args.buffer_chunks),
        "--duration",
        str(seconds),
        "--stats",
        "10",
        "--atten-lim-db",
        "0",
        "--rt-priority",
        str(args.rt_priority),
    ] + (["--callback-ms", str(args.callback_ms)] if args.callback_ms is not None else [])
    cmd += ["--model", args.model] if args.model else []
    live = subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    log, running = [], threading.Event()

    def follow():
        for line in live.stderr:
            log.append(line)
            print(line, end="", file=sys.stderr)
            if "live: running" in line:
                running.set()
        running.set()

    threading.Thread(target=follow, daemon=True).start()
    running.wait(60)
    return live, log


def probe_lags(env: dict) -> list[float]:
    """One probe process playing into "both" (= mic + speaker) and recording speaker.monitor."""
    r = subprocess.run([sys.executable, "-m", "scripts.bench.bench_live_batch", "_probe"], cwd=REPO,
                       env={**env, "PULSE_SINK": "both", "PULSE_SOURCE": "speaker.monitor"},
                       capture_output=True, text=True, timeout=60)
    try:
        return [float(v) for v in r.stdout.split()]
    except ValueError:
        print(f"probe failed: {r.stdout[-300:]} {r.stderr[-300:]}", file=sys.stderr)
        return []


BURSTS = (0.4, 1.0, 1.6)


def probe() -> None:
    """Play bursts, record; each burst comes back twice: directly, then through streamae.
    Prints the time between the two echoes of each burst, ms."""
    import sounddevice as sd

    rng = np.random.default_rng(0)
    burst = np.convolve(rng.standard_normal(960), np.hanning(9) / 4.5, "same").astype(np.float32) * 0.3
    play = np.zeros(int(2.4 * RATE), np.float32)
    for start in BURSTS:
        play[int(start * RATE):int(start * RATE) + len(burst)] = burst
    rec = sd.playrec(
        play.reshape(-1, 1), samplerate=RATE, channels=1, dtype="float32", blocksize=480, latency="low"
    )
    sd.wait()
    y = rec[:, 0]
    corr = np.abs(np.correlate(y, burst, "valid"))
    out = []
    for start in BURSTS:  # the echoes of a burst arrive within 0.5 s of it, in order
        lo = int(start * RATE)
        window = corr[lo:lo + int(0.5 * RATE)]
        peaks = [i for i in np.argsort(window)[::-1][:2000] if window[i] > 0.3 * window.max()]
        first = min(peaks)
        later = [i for i in peaks if i > first + 0.005 * RATE]
        if later:
            out.append(1000 * (max(later, key=lambda i: window[i]) - first) / RATE)
    print(" ".join(f"{v:.2f}" for v in out))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    b = sub.add_parser("batch")
    b.add_argument("--model", default=None)
    b.add_argument("--jobs", type=int, default=2)
    b.add_argument("--files", type=int, default=16)
    b.add_argument("--seconds", type=float, default=60.0)
    lv = sub.add_parser("live")
    lv.add_argument("--model", default=None)
    lv.add_argument("--seconds", type=float, default=60.0)
    lv.add_argument("--chunk-ms", type=float, default=10.0)
    lv.add_argument(
        "--rate", type=int, default=RATE, help="streamae's device rate (the server runs at 48 kHz)"
    )
    lv.add_argument("--buffer-chunks", type=int, default=2)
    lv.add_argument("--callback-ms", type=float, default=None)
    lv.add_argument(
        "--rt-priority",
        type=int,
        default=0,
        help="streamae live --rt-priority N, and the PulseAudio server at N+5 (as rtkit would run it)",
    )
    sub.add_parser("_probe")
    args = p.parse_args()
    {"batch": bench_batch, "live": bench_live, "_probe": lambda a: probe()}[args.what](args)


if __name__ == "__main__":
    os.chdir(REPO)
    main()
