"""What `streamae denoise ... --ray` costs against the local batch, and how it should scale with N
workers (issue 24); writes docs/BENCHMARKS.md "Cluster" with --markdown.

    nice -n 10 python -m scripts.bench.bench_ray --markdown docs/BENCHMARKS.md --json /tmp/bench_ray.json

As root: every Ray run goes in a network namespace of its own with loopback only (`unshare -n`),
since Ray registers its node on the machine's other interfaces (see tests/test_ray_batch.py).

Same audio tree, same machine: --files files of --minutes each, real noisy speech (speech/dev x
noise/dev of --data, seeded, as streamae.evaluation.make_test_mix mixes them; synthetic noisy
speech where --data has none), 48 kHz mono WAV, 48 kHz stereo FLAC and 16 kHz mono WAV in two
sub-folders of a temporary folder (never the repository). `streamae denoise TREE --recursive
--out-dir OUT`, with the command's default model, runs as
- local: `--jobs 2` (two processes), and
- ray: `--ray --jobs 2` (a local Ray of 2 CPUs, started and stopped by the command),
in --rounds rounds whose order alternates, so a shared machine's drift hits both arms alike;
medians. Wall time of the whole command and CPU time of all its processes (Ray's own included);
audio hours per wall hour; the ratios ray / local of both times.

The pieces of a model on paper, measured in the same rounds:
- the work: CPU seconds per audio second of `denoise_file` on one thread (the batch's per-file
  function), here in this process, over one file of each format;
- Ray's fixed cost: ray.init of a local cluster, 2 actors started with the model loaded (through
  streamae.cluster.map_on_ray, as the command does), and the shutdown;
- Ray's cost per file: --tasks tasks through the same map_on_ray that carry a real Job and return
  an Outcome but clean nothing (the audio itself never goes through Ray: workers read and write
  the shared storage), timed from the first result to the last.
The scaling table is then arithmetic from those numbers, not a measurement.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from importlib.metadata import version
from pathlib import Path

import numpy as np

from scripts.bench.sections import replace_section
from streamae.audio import resample, write_audio
from streamae.cli import build_parser
from streamae.cli.common import denoiser_factory
from streamae.denoise import Job, Outcome, denoise_file, plan_jobs

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
RATE = 48000
FORMATS = [(48000, 1, "wav"), (48000, 1, "wav"), (48000, 2, "flac"), (16000, 1, "wav")]  # file i: i % 4
WORKERS = 2
SCALING_N = (1, 2, 4, 8, 16, 64)


# -- the audio tree -------------------------------------------------------------------------------
def noisy_pool(data: Path) -> tuple[list[np.ndarray], str]:
    """48 kHz noisy speech to cut the files from: real mixtures where `data` has them."""
    speech, noise = data / "speech" / "dev", data / "noise" / "dev"
    if speech.is_dir() and noise.is_dir():
        from streamae.evaluation import make_test_mix

        what = (f"real noisy speech ({os.path.relpath(speech, REPO)} x {os.path.relpath(noise, REPO)}, "
                "seeded mixtures at -5..15 dB SNR)")
        return [m.noisy for m in make_test_mix(speech, noise, rate=RATE)], what
    from tests.support.signals import noise as white
    from tests.support.signals import speechlike

    return [speechlike(30, RATE, s) + white(30, RATE, s + 100) for s in range(8)], \
        "synthetic noisy speech (tests/support/signals.py)"


def write_tree(root: Path, files: int, seconds: float, data: Path) -> tuple[float, str]:
    """The benchmark's input tree; returns its audio seconds and what the audio is."""
    pool, what = noisy_pool(data)
    rng = np.random.default_rng(0)
    for i in range(files):
        rate, channels, ext = FORMATS[i % len(FORMATS)]
        x = np.stack([_cut(pool, seconds, rng) for _ in range(channels)])
        path = root / f"day{i % 2 + 1}" / f"take{i:02d}.{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_audio(path, resample(x, RATE, rate), rate, "PCM_16")
    return files * seconds, what


def _cut(pool: list[np.ndarray], seconds: float, rng: np.random.Generator) -> np.ndarray:
    """`seconds` of the pool's clips, end to end in a seeded order."""
    need, parts = int(seconds * RATE), []
    while sum(map(len, parts)) < need:
        parts.append(pool[rng.integers(len(pool))])
    return np.concatenate(parts)[:need].astype(np.float32)


# -- the two arms ---------------------------------------------------------------------------------
def run_arm(arm: str, tree: Path, out: Path, model: list[str], files: int) -> dict:
    """One `streamae denoise` of the whole tree: wall s of the command and CPU s of all its
    processes (Ray's own included)."""
    cmd = [sys.executable, "-m", "streamae", "denoise", str(tree), "--recursive", "--out-dir", str(out),
           "--jobs", str(WORKERS), *model]
    if arm == "ray":
        cmd = [*NAMESPACE, *cmd, "--ray"]
    log = out.with_suffix(".log")
    with log.open("w") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr,
                                start_new_session=True)
        cpu = session_cpu(proc)
        wall = time.perf_counter() - started
    text = log.read_text()
    shutil.rmtree(out, ignore_errors=True)
    log.unlink()
    if proc.returncode or f"done {files} " not in text:
        sys.exit(f"{arm}: {shlex.join(cmd)} failed:\n{text}")
    return {"wall_s": wall, "cpu_s": cpu}


def session_cpu(proc: subprocess.Popen, every: float = 0.5) -> float:
    """CPU s used by every process of `proc`'s session until `proc` ends, read from /proc every
    `every` s (what a process used after its last reading is missed, alike in both arms). Not
    rusage: Ray's processes are not children that the command waits for."""
    tick, seen = os.sysconf("SC_CLK_TCK"), {}
    while proc.poll() is None:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            if int(fields[3]) == proc.pid:  # its session
                seen[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        time.sleep(every)
    return sum(seen.values())


# -- the pieces of the model ----------------------------------------------------------------------
def work_cost(paths: list[Path], model: str, out: Path) -> dict:
    """CPU s per audio s of the batch's per-file function on one thread, and the model's load."""
    options = build_parser().parse_args(["denoise", "IN", "--out-dir", "OUT", "--model", model])
    t = time.perf_counter()
    denoiser = denoiser_factory(options, threads=1)()
    load = time.perf_counter() - t
    cpu = audio = 0.0
    for path in paths:
        c = time.process_time()
        audio += denoise_file(denoiser, path, out / path.name, overwrite=True).audio_seconds
        cpu += time.process_time() - c
        (out / path.name).unlink()
    return {"cpu_s_per_audio_s": cpu / audio, "model_load_s": load}


def _echo(state: object, job: Job) -> Outcome:
    """A task that carries what a real one carries (a Job in, an Outcome back) and cleans nothing."""
    return Outcome(job, "done")


def probe(tree: Path, model: str, tasks: int) -> dict:
    """Ray's fixed and per-file costs, timed piece by piece (run inside the namespace)."""
    from streamae import cluster
    from streamae.denoise import _init_worker

    options = build_parser().parse_args(["denoise", "IN", "--out-dir", "OUT", "--model", model])
    make = denoiser_factory(options, threads=1)
    jobs = plan_jobs([str(tree)], tree.parent / "probe-out", recursive=True)
    jobs = [jobs[i % len(jobs)] for i in range(tasks)]
    t = {}

    def timed(name, call):
        started = time.perf_counter()
        result = call()
        t[name] = time.perf_counter() - started
        return result

    ray = timed("init_s", lambda: cluster.connect(None, num_cpus=WORKERS))
    try:
        timed("actors_with_model_s",
              lambda: list(cluster.map_on_ray(ray, jobs[:WORKERS], make, _init_worker, _echo, WORKERS)))
        stamps = []  # from the first task's result to the last one's: the workers' start is left out
        for _, outcome in cluster.map_on_ray(ray, jobs, int, cluster.keep, _echo, WORKERS):
            stamps.append(time.perf_counter())
            assert isinstance(outcome, Outcome), outcome
    finally:
        timed("shutdown_s", lambda: cluster.disconnect(ray))
    t["per_task_s"] = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
    return t


def run_probe(tree: Path, model: str, tasks: int) -> dict:
    cmd = [*NAMESPACE, sys.executable, "-m", "scripts.bench.bench_ray", "--probe", str(tree),
           "--model", model, "--tasks", str(tasks)]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"probe failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# -- the model on paper ---------------------------------------------------------------------------
def scaling(cpu_per_audio_s: float, file_s: float, fixed_s: float, per_task_s: float,
            archive_h: float) -> list[dict]:
    """Predicted wall time for N workers: the fixed cost, then the slower of the workers (each
    file costs its work plus one task's overhead, files dealt evenly) and the driver (which
    handles the tasks one after another)."""
    files = math.ceil(archive_h * 3600 / file_s)
    per_file = cpu_per_audio_s * file_s + per_task_s
    rows = []
    for n in SCALING_N:
        workers, driver = math.ceil(files / n) * per_file, files * per_task_s
        wall = fixed_s + max(workers, driver)
        rows.append({"workers": n, "wall_h": wall / 3600, "audio_h_per_wall_h": archive_h * 3600 / wall,
                     "limit": "workers" if workers >= driver else "driver"})
    for row in rows:
        row["speed_up"] = rows[0]["wall_h"] / row["wall_h"]
    return rows


# -- report ---------------------------------------------------------------------------------------
def summarise(rounds: list[dict], audio_s: float, files: int, seconds: float, archive_h: float) -> dict:
    med = statistics.median
    arms = {}
    for arm in ("local", "ray"):
        walls, cpus = [r[arm]["wall_s"] for r in rounds], [r[arm]["cpu_s"] for r in rounds]
        arms[arm] = {"wall_s": med(walls), "wall_range_s": [min(walls), max(walls)], "cpu_s": med(cpus),
                     "cpu_range_s": [min(cpus), max(cpus)], "audio_h_per_wall_h": audio_s / med(walls),
                     "cores_used": med(c / w for c, w in zip(cpus, walls))}
    ratios = [r["ray"]["wall_s"] / r["local"]["wall_s"] for r in rounds]
    cpu_ratios = [r["ray"]["cpu_s"] / r["local"]["cpu_s"] for r in rounds]
    pieces = {k: med(r["probe"][k] for r in rounds) for k in rounds[0]["probe"]}
    pieces.update({k: med(r["work"][k] for r in rounds) for k in rounds[0]["work"]})
    fixed = pieces["init_s"] + pieces["actors_with_model_s"] + pieces["shutdown_s"]
    work_s = pieces["cpu_s_per_audio_s"] * audio_s
    return {
        "arms": arms, "ratio_wall": med(ratios), "ratio_wall_range": [min(ratios), max(ratios)],
        "ratio_cpu": med(cpu_ratios), "ratio_cpu_range": [min(cpu_ratios), max(cpu_ratios)],
        "pieces": pieces, "fixed_s": fixed, "work_cpu_s": work_s,
        "scaling": scaling(pieces["cpu_s_per_audio_s"], seconds, fixed, pieces["per_task_s"], archive_h),
        "archive_h": archive_h, "file_s": seconds,
        "model_this_tree_2_workers_s": fixed + math.ceil(files / WORKERS) * (
            pieces["cpu_s_per_audio_s"] * seconds + pieces["per_task_s"]),
    }


def markdown(res: dict) -> str:
    s, a, p = res["summary"], res["summary"]["arms"], res["summary"]["pieces"]
    lo, ra = a["local"], a["ray"]
    lines = [
        "## Cluster: `--ray` against the local batch",
        "",
        f"Measured {res['date']} on {res['machine']}, ray {res['ray']}, with:",
        "",
        f"    {res['command']}",
        "",
        f"Conditions: {res['note'] or 'no note given'}; load average {res['load'][0]} before, "
        f"{res['load'][1]} after. The benchmark ran under `nice`"
        + (" (which here orders processes only within a session: the kernel's autogroup scheduling is on, "
           "so the benchmark got about one session's share of the cores whatever its nice)"
           if res.get("autogroup") else "")
        + f", and the arms alternate within each of the {res['rounds']} rounds, so both suffered the same "
        "conditions: the ratios carry to another machine, the absolute numbers do not.",
        "",
        f"Input: {res['files']} files x {res['seconds'] / 60:g} min ({res['audio_s'] / 3600:.2f} h), "
        f"{res['audio']}, as 48 kHz mono WAV, 48 kHz stereo FLAC and 16 kHz mono WAV in two "
        f"sub-folders. `streamae denoise TREE --recursive --out-dir OUT --jobs 2` with the command's default "
        f"model (`{res['model']}`), locally and with `--ray` (a local Ray of 2 CPUs started and "
        "stopped by the command, in a loopback-only network namespace). Medians:",
        "",
        "| arm | wall s (range) | audio hours per wall hour | CPU s, all its processes (range) "
        "| cores it got |",
        "|---|---|---|---|---|",
        *[f"| {name} | {x['wall_s']:.1f} ({x['wall_range_s'][0]:.1f}-{x['wall_range_s'][1]:.1f}) | "
          f"{x['audio_h_per_wall_h']:.0f} | {x['cpu_s']:.1f} ({x['cpu_range_s'][0]:.1f}-"
          f"{x['cpu_range_s'][1]:.1f}) | {x['cores_used']:.2f} |"
          for name, x in (("local `--jobs 2`", lo), ("`--ray --jobs 2`", ra))],
        "",
        f"Ray / local: wall time {s['ratio_wall']:.2f} (rounds {s['ratio_wall_range'][0]:.2f}-"
        f"{s['ratio_wall_range'][1]:.2f}), CPU time {s['ratio_cpu']:.2f} (rounds "
        f"{s['ratio_cpu_range'][0]:.2f}-{s['ratio_cpu_range'][1]:.2f}). The cleaning itself is "
        f"{s['work_cpu_s']:.0f} CPU s (the work below times the tree); beyond it the local run used "
        f"{lo['cpu_s'] - s['work_cpu_s']:.1f} CPU s (starting its processes) and the Ray run "
        f"{ra['cpu_s'] - s['work_cpu_s']:.1f} (Ray's own processes, GCS, raylet, agents, and its workers' "
        "start). CPU s are summed over every process of the command's session, read from "
        "/proc every 0.5 s; `cores it got` is CPU s / wall s (2 on an idle machine). Where the two "
        "ratios differ, the difference is how the busy machine's scheduler shared the cores between "
        "the arms' processes, not work that Ray did or saved: on a machine of its own the overhead is "
        "the CPU ratio and the fixed cost below.",
        "",
        "The pieces (medians over the rounds):",
        "",
        f"- work: {p['cpu_s_per_audio_s']:.4f} CPU s per audio s on one thread "
        f"({p['cpu_s_per_audio_s'] * res['seconds']:.2f} s per {res['seconds'] / 60:g}-min file, the tree's "
        f"mix of formats); loading the model {p['model_load_s']:.2f} s;",
        f"- Ray's fixed cost {s['fixed_s']:.1f} s: ray.init of a local cluster {p['init_s']:.2f} s, two "
        f"workers started with the model loaded {p['actors_with_model_s']:.2f} s, shutdown "
        f"{p['shutdown_s']:.2f} s;",
        f"- Ray's cost per file: {1000 * p['per_task_s']:.1f} ms (tasks carrying a real Job and Outcome "
        f"but cleaning nothing, {res['tasks']} of them through streamae.cluster.map_on_ray on two workers).",
        "",
        f"On paper (a model from the numbers above, not a measurement): an archive of "
        f"{s['archive_h']:,.0f} h in {s['file_s'] / 60:g}-min files, N workers each with a core of its own, "
        f"wall = fixed cost + the larger of ceil(files / N) x (work + per-file cost) and files x "
        f"per-file cost (the driver hands out every task). It leaves out the shared storage's bandwidth "
        f"(every byte is read and written there), the network between nodes, nodes' differing speeds, "
        f"starting more nodes (taken to start in parallel, as the two workers did) and failures. For "
        f"this tree it predicts {s['model_this_tree_2_workers_s']:.1f} s on two free cores, against "
        f"{ra['wall_s']:.1f} s measured here with the cores shared as above. The driver, handing out one "
        f"task per file, would become the limit only near N = "
        f"{(p['cpu_s_per_audio_s'] * s['file_s'] + p['per_task_s']) / p['per_task_s']:,.0f} workers.",
        "",
        "| workers | wall h | audio hours per wall hour | speed-up | limited by |",
        "|---|---|---|---|---|",
    ]
    for row in s["scaling"]:
        lines.append(f"| {row['workers']} | {row['wall_h']:.2f} | {row['audio_h_per_wall_h']:,.0f} | "
                     f"{row['speed_up']:.1f} | {row['limit']} |")
    return "\n".join(lines) + "\n"


def _machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    return f"{platform.machine()}, {os.cpu_count()} cores ({cpu}), CPython {platform.python_version()}"


def _autogroup() -> bool:
    knob = Path("/proc/sys/kernel/sched_autogroup_enabled")
    return knob.exists() and knob.read_text().strip() == "1"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=16)
    p.add_argument("--minutes", type=float, default=2.0, help="length of each file")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians over them)")
    p.add_argument("--tasks", type=int, default=400, help="trivial tasks for Ray's per-file cost")
    p.add_argument("--archive-hours", type=float, default=1000.0, help="the archive of the scaling table")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--model", default=None, help="a denoiser (default: the one `streamae denoise` uses)")
    p.add_argument("--note", default="", help="what else the machine was doing, for the report")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--markdown", type=Path, default=None, help="write/replace this benchmark's section")
    p.add_argument("--report-from", type=Path, default=None, metavar="JSON",
                   help="measure nothing: print (and --markdown) the report of an earlier run's --json")
    p.add_argument("--probe", type=Path, default=None, help=argparse.SUPPRESS)  # inside the namespace
    args = p.parse_args()
    model = args.model or build_parser().parse_args(["denoise", "IN", "--out-dir", "OUT"]).model
    if args.probe:
        print(json.dumps(probe(args.probe, model, args.tasks)))
        return
    if args.report_from:
        report(json.loads(args.report_from.read_text()), args.markdown)
        return
    if subprocess.run([*NAMESPACE, "true"], capture_output=True).returncode:
        sys.exit("needs `unshare -n` (root): Ray must run in a loopback-only network namespace")
    seconds = 60 * args.minutes
    load = [os.getloadavg()[0]]
    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    try:
        tree = work / "in"
        audio_s, audio = write_tree(tree, args.files, seconds, args.data)
        samples = [sorted(tree.rglob(f"take{i:02d}.*"))[0] for i in range(min(len(FORMATS), args.files))]
        flag = ["--model", args.model] if args.model else []
        rounds = []
        for r in range(args.rounds):
            row = {}
            for arm in ("local", "ray") if r % 2 == 0 else ("ray", "local"):
                row[arm] = run_arm(arm, tree, work / f"out-{arm}", flag, args.files)
            row["work"] = work_cost(samples, model, work)
            row["probe"] = run_probe(tree, model, args.tasks)
            rounds.append(row)
            lo, ra = row["local"], row["ray"]
            print(f"round {r + 1}: local {lo['wall_s']:.1f} s ({lo['cpu_s']:.1f} CPU s), ray "
                  f"{ra['wall_s']:.1f} s ({ra['cpu_s']:.1f} CPU s), "
                  f"work {row['work']['cpu_s_per_audio_s']:.4f} CPU s/audio s, ray.init "
                  f"{row['probe']['init_s']:.2f} s, per task {1000 * row['probe']['per_task_s']:.1f} ms",
                  flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load.append(os.getloadavg()[0])
    res = {
        "date": date.today().isoformat(), "machine": _machine(), "ray": version("ray"),
        "command": (f"nice -n {os.nice(0)} " if os.nice(0) else "") + "python -m scripts.bench.bench_ray "
        + shlex.join(sys.argv[1:]),
        "note": args.note, "load": [round(x, 2) for x in load], "rounds": args.rounds,
        "autogroup": _autogroup(),
        "files": args.files, "seconds": seconds, "audio_s": audio_s, "audio": audio, "model": model,
        "tasks": args.tasks, "per_round": rounds,
        "summary": summarise(rounds, audio_s, args.files, seconds, args.archive_hours),
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1))
    report(res, args.markdown)


def report(res: dict, path: Path | None) -> None:
    section = markdown(res)
    print(section)
    if path:
        replace_section(path, section)


if __name__ == "__main__":
    main()
