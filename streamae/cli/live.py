"""`streamae live`: clean a microphone in real time (or a file, paced like one)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..audio import check_output
from ..errors import StreamaeError
from ..live import BUFFER_CHUNKS, CHUNK_MS, device_table, run_devices, run_file
from .common import add_denoiser_options, denoiser_factory


def register(commands) -> None:
    p = commands.add_parser("live", help="clean a microphone live (or a file, paced like one)",
                            description="Clean a microphone in real time and play it and/or record it. "
                            "Prints the total latency on start. Ctrl-C stops (the recording is kept).")
    p.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    p.add_argument(
        "-i", "--input-device", default=None, help="input device, index or name (default: system default)"
    )
    p.add_argument("-o", "--output-device", default=None,
                   help="output device, index or name (default: system default; none when only --record)")
    p.add_argument(
        "--input-file", default=None, help="read this file instead of a microphone (no device needed)"
    )
    p.add_argument("--realtime", action="store_true", help="with --input-file: pace it like a live device")
    p.add_argument(
        "--record", default=None, help="write the cleaned output (as heard, latency included) here"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --record file")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--rate", type=int, default=None, help="device sample rate (default: the device's)")
    p.add_argument("--channels", type=int, default=1, help="channels to clean (default 1)")
    p.add_argument("--chunk-ms", type=float, default=CHUNK_MS,
                   help="block the model cleans at a time (default %(default)s ms)")
    p.add_argument(
        "--callback-ms",
        type=float,
        default=None,
        help="device buffer per callback (default: --chunk-ms; 0: the device's choice, often lower "
        "latency but more xruns on a busy machine)",
    )
    p.add_argument(
        "--buffer-chunks",
        type=int,
        default=BUFFER_CHUNKS,
        help="chunks the model may take before its output is due (default %(default)s; 1 is the minimum)",
    )
    p.add_argument("--rt-priority", type=int, default=0, metavar="N",
                   help="run the audio threads with real-time priority N (1-99; needs root or an rtprio "
                   "limit); removes xruns on a busy machine")
    p.add_argument("--stats", type=float, default=0.0, metavar="SECONDS",
                   help="print real-time factor and xruns every SECONDS (default: only at the end)")
    add_denoiser_options(p, default="live")
    p.set_defaults(run=run, threads=1)


def run(args: argparse.Namespace) -> int:
    if args.list_devices:
        print(device_table())
        return 0
    if args.chunk_ms <= 0 or (args.callback_ms or 0) < 0 or args.buffer_chunks < 1 or args.channels < 1:
        raise StreamaeError("--chunk-ms must be positive, --callback-ms not negative, "
                            "--buffer-chunks and --channels at least 1")
    if args.input_file and not args.record:
        raise StreamaeError("--input-file needs --record OUT (playing a file to a device is not supported)")
    if args.record:
        check_output(Path(args.input_file or "-"), Path(args.record), args.overwrite)
    timing = dict(duration_s=args.duration, chunk_ms=args.chunk_ms, buffer_chunks=args.buffer_chunks,
                  stats_every_s=args.stats)
    if args.input_file:
        run_file(denoiser_factory(args)(), args.input_file, args.record, realtime=args.realtime, **timing)
    else:
        run_devices(denoiser_factory(args), input_device=args.input_device, output_device=args.output_device,
                    record=args.record, rate=args.rate, channels=args.channels, callback_ms=args.callback_ms,
                    rt_priority=args.rt_priority, **timing)
    return 0
