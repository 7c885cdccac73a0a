"""`streamae denoise IN... --out-dir DIR`: mirrored trees, kept formats, skips, resume after a
kill, summaries and exit codes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from streamae import Denoiser

from conftest import REPO
from support.signals import relative_files as files
from support.signals import write_mixed_tree
from support.signals import write_noisy_speech as write


def denoise(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "streamae", "denoise", *args], capture_output=True, text=True, cwd=REPO
    )


@pytest.fixture
def tree(tmp_path) -> Path:
    return write_mixed_tree(tmp_path / "in")


def test_mirrors_the_tree_keeping_format_rate_channels(tiny_model, tree, tmp_path):
    out = tmp_path / "out"
    r = denoise(str(tree), "--out-dir", str(out), "--recursive", "--jobs", "2", "--model", str(tiny_model))
    assert r.returncode == 0, r.stderr
    assert files(out) == ["a.wav", "b.flac", "calls/c.ogg", "calls/old/d.wav"]
    for name in files(out):
        a, b = sf.info(str(tree / name)), sf.info(str(out / name))
        assert (b.format, b.subtype, b.samplerate, b.channels, b.frames) == \
            (a.format, a.subtype, a.samplerate, a.channels, a.frames)
    x, rate = sf.read(tree / "calls/old/d.wav", dtype="float32")
    y, _ = sf.read(out / "calls/old/d.wav", dtype="float32")
    np.testing.assert_allclose(
        y, Denoiser(tiny_model).process(x, rate), atol=1e-5
    )  # same as the one-file API
    assert "done 4" in r.stderr and "skipped 0, failed 0" in r.stderr and "audio-h" in r.stderr


def test_folder_without_recursive_and_glob(tiny_model, tree, tmp_path):
    out = tmp_path / "out"
    assert (
        denoise(str(tree), "--out-dir", str(out), "--jobs", "1", "--model", str(tiny_model)).returncode == 0
    )
    assert files(out) == ["a.wav", "b.flac"]
    out2 = tmp_path / "out2"
    r = denoise(str(tree), str(tree / "a.wav"), "--out-dir", str(out2), "--recursive", "--glob", "*.wav",
                "--model", str(tiny_model))
    assert r.returncode == 1 and "would be written there" in r.stderr  # in/a.wav twice -> out2/a.wav
    r = denoise(
        str(tree / "calls"),
        "--out-dir",
        str(out2),
        "--recursive",
        "--glob",
        "*.wav",
        "--model",
        str(tiny_model),
    )
    assert r.returncode == 0 and files(out2) == ["old/d.wav"]


def test_done_files_are_skipped_unless_overwrite(tiny_model, tree, tmp_path):
    out = tmp_path / "out"
    args = [str(tree), "--out-dir", str(out), "--recursive", "--jobs", "1", "--model", str(tiny_model)]
    assert denoise(*args).returncode == 0
    (out / "b.flac").unlink()
    stamp = (out / "a.wav").stat().st_mtime_ns
    r = denoise(*args)
    assert (
        r.returncode == 0 and "done 1" in r.stderr and "skipped 3" in r.stderr and "already done" in r.stderr
    )
    assert (out / "a.wav").stat().st_mtime_ns == stamp and (out / "b.flac").exists()
    r = denoise(*args, "--overwrite")
    assert r.returncode == 0 and "done 4" in r.stderr and (out / "a.wav").stat().st_mtime_ns != stamp


def test_failures_are_listed_and_set_the_exit_code(tiny_model, tree, tmp_path):
    (tree / "broken.wav").write_bytes(b"RIFF" + os.urandom(500))
    (tree / "empty.flac").touch()
    out = tmp_path / "out"
    r = denoise(str(tree), "--out-dir", str(out), "--jobs", "2", "--model", str(tiny_model))
    assert r.returncode == 1
    assert "done 2" in r.stderr and "failed 2" in r.stderr
    assert "broken.wav: cannot read audio" in r.stderr and "empty.flac: file is empty" in r.stderr
    assert "Traceback" not in r.stderr
    assert files(out) == ["a.wav", "b.flac"]  # no partial or empty outputs for the failures


def test_killed_run_leaves_no_partial_output_and_a_rerun_finishes(tiny_model, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    for i in range(3):
        write(src / f"long{i}.wav", 90.0, 16000, seed=i)
    cmd = [sys.executable, "-m", "streamae", "denoise", str(src), "--out-dir", str(out), "--jobs", "1",
           "--model", str(tiny_model)]
    run = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(out.glob(".*.partial-*")) and run.poll() is None:  # wait until it is mid-file
        assert time.monotonic() < deadline
        time.sleep(0.002)
    run.send_signal(signal.SIGKILL)
    run.wait()
    partial = list(out.glob(".*.partial-*"))
    assert partial, "the run finished before it could be killed"
    done_before = [p.name for p in out.glob("*.wav")]
    assert len(done_before) < 3  # the file being written is not there under its real name
    for name in done_before:  # whatever is there under its real name is complete
        assert sf.info(str(out / name)).frames == 90 * 16000
    r = denoise(*cmd[4:])
    assert r.returncode == 0, r.stderr
    assert f"skipped {len(done_before)}" in r.stderr and f"done {3 - len(done_before)}" in r.stderr
    assert files(out) == ["long0.wav", "long1.wav", "long2.wav"]  # the stale temporary file is gone
    assert all(sf.info(str(out / f"long{i}.wav")).frames == 90 * 16000 for i in range(3))


def test_device_cuda_without_cuda_says_so(tiny_model, tree, tmp_path):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "out"
    r = denoise(str(tree), "--out-dir", str(out), "--device", "cuda", "--model", str(tiny_model))
    assert r.returncode == 1
    assert r.stderr.strip() == ("streamae: error: --device cuda: this onnxruntime has no CUDA provider "
                                "(install onnxruntime-gpu with a matching CUDA)")
    assert not out.exists()


def test_usage_errors(tiny_model, tree, tmp_path):
    r = denoise(
        str(tree / "a.wav"), str(tree / "b.flac"), "-o", str(tmp_path / "x.wav"), "--model", str(tiny_model)
    )
    assert r.returncode == 1 and "--out-dir" in r.stderr
    r = denoise(str(tmp_path / "nothing"), "--out-dir", str(tmp_path / "out"), "--model", str(tiny_model))
    assert r.returncode == 1 and "no such file or folder" in r.stderr
    r = denoise(str(tree / "calls" / "old" / ".."), "--glob", "*.flac", "--out-dir", str(tmp_path / "out"),
                "--model", str(tiny_model))
    assert r.returncode == 1 and "no audio files" in r.stderr and "--recursive" in r.stderr


OBJECT_STORE = ("object stores are not supported; mount the bucket as a file system (s3fs, gcsfuse) and "
                "give its mounted path")


@pytest.mark.parametrize("args, url", [
    (["{tree}", "--out-dir", "s3://bucket/clean"], "s3://bucket/clean"),
    (["gs://bucket/archive", "--out-dir", "{out}"], "gs://bucket/archive"),
    (["{tree}/a.wav", "-o", "s3://bucket/a.wav"], "s3://bucket/a.wav"),
    (["s3://bucket/a.wav", "-o", "{out}/a.wav"], "s3://bucket/a.wav"),
])
def test_object_store_urls_are_one_clear_line(tiny_model, tree, tmp_path, args, url):
    """Not a local folder named 's3:' (what pathlib makes of s3://), nor a missing file."""
    work = tmp_path / "cwd"
    work.mkdir()
    args = [a.format(tree=tree, out=tmp_path / "out") for a in args]
    r = subprocess.run([sys.executable, "-m", "streamae", "denoise", *args, "--model", str(tiny_model)],
                       capture_output=True, text=True, cwd=work)
    assert r.returncode == 1
    assert r.stderr == f"streamae: error: {url}: {OBJECT_STORE}\n"
    assert not list(work.iterdir()) and not (tmp_path / "out").exists()


# -- issue 23: Ctrl-C, kill -9, --jobs ---------------------------------------------------------
def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _workers(pid: int) -> list[int]:
    """The batch's worker processes (not multiprocessing's resource tracker, which goes by itself)."""
    return [c for c in _children(pid)
            if b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")  # a zombie has stopped running; its reaper may be slow


def expected_workers() -> int:
    return 2 if (os.cpu_count() or 1) >= 2 else 0  # one core: --jobs 2 is capped, the parent works


def start_batch(model: Path, src: Path, out: Path, writing: int, **popen) -> tuple[subprocess.Popen, list]:
    """`streamae denoise SRC --out-dir OUT --jobs 2` started, and waited on until `writing` files
    are being written; returns the process and their temporary files."""
    cmd = [sys.executable, "-m", "streamae", "denoise", str(src), "--out-dir", str(out), "--jobs", "2",
           "--model", str(model)]
    run = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           **popen)
    deadline = time.monotonic() + 120
    while len(partial := list(out.glob(".*.partial-*"))) < writing:
        assert run.poll() is None and time.monotonic() < deadline, run.stderr.read() if run.poll() else ""
        time.sleep(0.002)
    return run, partial


@pytest.fixture
def long_batch(tiny_model, tmp_path):
    """A batch of long files, started with --jobs 2 in its own session and waited on until both
    workers are writing; yields (process, out folder, worker pids)."""
    if not Path("/proc").is_dir():
        pytest.skip("needs /proc")
    src, out = tmp_path / "in", tmp_path / "out"
    for i in range(6):
        write(src / f"long{i}.wav", 120.0, 16000, seed=i)
    run, _ = start_batch(tiny_model, src, out, max(1, expected_workers()), start_new_session=True)
    yield run, out, _workers(run.pid)
    if run.poll() is None:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()


def _finished_cleanly(out: Path) -> None:
    assert not list(out.glob(".*.partial-*"))
    for f in out.glob("*.wav"):  # whatever is there under its real name is complete
        assert sf.info(str(f)).frames == 120 * 16000


@pytest.mark.parametrize("to", ["group", "parent"])
def test_ctrl_c_stops_a_batch_and_its_workers_within_2_s(long_batch, to):
    run, out, workers = long_batch
    assert len(workers) == expected_workers()
    started = time.monotonic()
    if to == "group":  # a terminal's Ctrl-C reaches every process in the foreground group
        os.killpg(run.pid, signal.SIGINT)
    else:
        run.send_signal(signal.SIGINT)
    stderr = run.communicate(timeout=10)[1]
    assert time.monotonic() - started < 2.0, stderr
    assert run.returncode == 130 and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1] == "streamae: interrupted"
    assert len(list(out.glob("*.wav"))) < 6  # it did not finish its queue first
    _finished_cleanly(out)
    assert all(_gone(pid) for pid in workers)


def test_second_ctrl_c_stops_at_once(long_batch):
    run, out, workers = long_batch
    started = time.monotonic()
    os.killpg(run.pid, signal.SIGINT)
    time.sleep(0.05)
    if run.poll() is None:
        os.killpg(run.pid, signal.SIGINT)
    stderr = run.communicate(timeout=10)[1]
    assert time.monotonic() - started < 2.0, stderr
    assert run.returncode == 130 and "Traceback" not in stderr, stderr
    _finished_cleanly(out)
    assert all(_gone(pid) for pid in workers)


def test_killing_the_parent_takes_its_workers(long_batch):
    run, out, workers = long_batch
    assert len(workers) == expected_workers()
    run.kill()
    run.wait()
    deadline = time.monotonic() + 2.0
    while not all(_gone(pid) for pid in workers):
        assert time.monotonic() < deadline, "workers outlived their parent"
        time.sleep(0.01)
    _finished_cleanly(out)  # they stopped cleanly: their temporary files are gone too


def test_jobs_above_files_or_cores_is_capped_with_a_note(tiny_model, tree, tmp_path):
    r = denoise(str(tree), "--out-dir", str(tmp_path / "out"), "--recursive", "--jobs", "1000",
                "--model", str(tiny_model))
    assert r.returncode == 0, r.stderr
    workers = min(4, os.cpu_count() or 1)
    assert f"--jobs 1000 capped at {workers}" in r.stderr and f"with {workers} process(es)" in r.stderr


def test_rerun_clears_temporary_files_of_killed_runs_beside_done_files(tiny_model, tree, tmp_path):
    out = tmp_path / "out"
    args = (str(tree), "--out-dir", str(out), "--recursive", "--model", str(tiny_model))
    assert denoise(*args).returncode == 0
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [out / f".a.wav.partial-{dead.pid}", out / "calls" / f".c.ogg.partial-{dead.pid}"]
    for p in stale:
        p.write_bytes(b"half a file")
    mine = out / f".b.flac.partial-{os.getpid()}"  # a live writer's: kept
    mine.write_bytes(b"being written")
    r = denoise(*args)
    assert r.returncode == 0 and "skipped 4" in r.stderr, r.stderr
    assert not any(p.exists() for p in stale) and mine.exists()


def test_a_worker_that_dies_fails_its_file_and_the_batch_goes_on(tiny_model, tmp_path):
    if (os.cpu_count() or 1) < 2 or not Path("/proc").is_dir():
        pytest.skip("needs two cores (worker processes) and /proc")
    src, out = tmp_path / "in", tmp_path / "out"
    for i in range(4):
        write(src / f"f{i}.wav", 40.0, 16000, seed=i)
    run, partial = start_batch(tiny_model, src, out, 1)
    victim = int(partial[0].name.rsplit("-", 1)[1])
    os.kill(victim, signal.SIGKILL)
    stderr = run.communicate(timeout=120)[1]
    assert run.returncode == 1, stderr
    assert "done 3" in stderr and "failed 1" in stderr
    assert "the worker process died (killed by SIGKILL)" in stderr
    assert "Traceback" not in stderr
    assert not list(out.glob(".*.partial-*")) and len(list(out.glob("*.wav"))) == 3
    r = subprocess.run(run.args, cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0 and "done 1" in r.stderr and "skipped 3" in r.stderr, r.stderr
