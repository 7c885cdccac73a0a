"""Issue 23, around the files: full disks, read-only targets, permissions, pipes, stale temporary
files. Every case ends as one line, `streamae: error: PATH: reason`, with nothing published and
no temporary file left.

Full and read-only disks are simulated (a temporary file that fails like one) everywhere, and
proven on a real 1 MiB tmpfs where the tests may mount one (root); permissions are proven as the
user `nobody` when running as root (root may read anything), else by chmod.
"""
from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from streamae import audio
from streamae.cli import main

from conftest import REPO, noise, speechlike


def streamae(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamae", *args], capture_output=True, text=True,
                          cwd=REPO, **kw)


def one_error_line(stderr: str, *words: str) -> str:
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr, stderr
    assert len(lines) >= 1 and lines[-1].startswith("streamae: error: "), stderr
    assert all(w in lines[-1] for w in words), stderr
    return lines[-1]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("streamae: error: ")]


def write_speech(path: Path, seconds: float, rate: int = 16000, channels: int = 1,
                 subtype: str = "PCM_16") -> None:
    x = np.stack([speechlike(seconds, rate, c) + noise(seconds, rate, c) for c in range(channels)], 1)
    sf.write(path, x, rate, subtype=subtype)


class FailingFile:
    """A temporary file that fails like a full disk (ENOSPC) once `room` bytes are written, or
    like a read-only file system (EROFS) on open."""

    def __init__(self, path: Path, room: int):
        self.f = open(path, "w+b")  # noqa: SIM115
        self.room = room

    def write(self, data) -> int:
        if self.f.tell() + len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)


@pytest.fixture
def full_disk(monkeypatch):
    def install(room: int = 20_000):
        monkeypatch.setattr(audio, "_open_temp", lambda path: FailingFile(path, room))
    return install


@pytest.fixture
def tmpfs(tmp_path):
    """A real 1 MiB tmpfs (root only; skipped where mount is not permitted)."""
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where = tmp_path / "small"
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3"])
def test_full_disk_is_one_line_and_leaves_nothing(tiny_model, tmp_path, full_disk, capsys, ext):
    src = tmp_path / "in.wav"
    write_speech(src, 8.0, 44100, channels=2)
    out = tmp_path / "out"
    out.mkdir()
    full_disk()
    code = main(["denoise", str(src), "-o", str(out / f"o.{ext}"), "--model", str(tiny_model)])
    assert code == 1
    assert one_error_line(capsys.readouterr().err) == \
        f"streamae: error: {out / f'o.{ext}'}: disk full (no space left on device)"
    assert os.listdir(out) == []


def test_full_disk_in_a_batch_fails_those_files(tiny_model, tmp_path, full_disk, capsys):
    src = tmp_path / "in"
    src.mkdir()
    write_speech(src / "a.wav", 6.0)
    write_speech(src / "b.wav", 6.0)
    full_disk()
    code = main(["denoise", str(src), "--out-dir", str(tmp_path / "out"), "--jobs", "1",
                 "--model", str(tiny_model)])
    err = capsys.readouterr().err
    assert code == 1 and "failed 2" in err and "disk full (no space left on device)" in err, err
    assert os.listdir(tmp_path / "out") == []


def test_real_full_disk(tiny_model, tmp_path, tmpfs):
    src = tmp_path / "in.wav"
    write_speech(src, 30.0, 44100, channels=2)  # 5.3 MB of 16-bit audio (FLAC: still > 1 MiB)
    for ext in ("wav", "flac"):
        r = streamae("denoise", str(src), "-o", str(tmpfs / f"o.{ext}"), "--model", str(tiny_model))
        assert r.returncode == 1
        assert one_error_line(r.stderr) == \
            f"streamae: error: {tmpfs / f'o.{ext}'}: disk full (no space left on device)"
        assert os.listdir(tmpfs) == []


def test_real_read_only_target(tiny_model, tmp_path, tmpfs):
    src = tmp_path / "in.wav"
    write_speech(src, 1.0)
    (tmpfs / "existing").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    r = streamae("denoise", str(src), "-o", str(tmpfs / "o.wav"), "--model", str(tiny_model))
    assert r.returncode == 1
    assert one_error_line(r.stderr) == f"streamae: error: {tmpfs / 'o.wav'}: read-only file system"
    r = streamae("denoise", str(src), "--out-dir", str(tmpfs / "new"), "--model", str(tiny_model))
    assert r.returncode == 1
    assert one_error_line(r.stderr) == f"streamae: error: {tmpfs / 'new'}: read-only file system"
    r = streamae("denoise", str(src), "--out-dir", str(tmpfs / "existing"), "--model", str(tiny_model))
    assert r.returncode == 1 and "read-only file system" in r.stderr and "Traceback" not in r.stderr
    assert sorted(os.listdir(tmpfs)) == ["existing"] and os.listdir(tmpfs / "existing") == []


def test_read_only_target_simulated(tiny_model, tmp_path, monkeypatch, capsys):
    src = tmp_path / "in.wav"
    write_speech(src, 1.0)

    def read_only(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(audio, "_open_temp", read_only)
    monkeypatch.setattr(Path, "unlink", lambda self, missing_ok=False: read_only(self))  # cleanup fails too
    assert main(["denoise", str(src), "-o", str(tmp_path / "o.wav"), "--model", str(tiny_model)]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line == f"streamae: error: {tmp_path / 'o.wav'}: read-only file system"
    monkeypatch.undo()
    monkeypatch.setattr(Path, "mkdir", lambda self, *a, **k: read_only(self))
    assert main(["denoise", str(src), "--out-dir", str(tmp_path / "new"), "--model", str(tiny_model)]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line == f"streamae: error: {tmp_path / 'new'}: read-only file system"


@pytest.fixture
def as_user(capsys):
    """(run, shared): run the CLI in this process as an unprivileged user (root reads anything:
    as root, with the effective ids of `nobody`, restored after each call), and a folder that
    user may see. Returns (exit code, stderr)."""
    shared = Path(tempfile.mkdtemp(prefix="streamae-perm-"))
    shared.chmod(0o755)

    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        root = os.geteuid() == 0
        if root:
            os.setegid(65534)
            os.seteuid(65534)
        try:
            code = main(list(args))
        finally:
            if root:
                os.seteuid(0)
                os.setegid(0)
        return code, capsys.readouterr().err

    yield run, shared
    for p in [shared, *shared.rglob("*")]:
        if p.is_dir():
            p.chmod(0o755)
    shutil.rmtree(shared, ignore_errors=True)


def test_permission_problems_say_so(tiny_model, as_user):
    run, shared = as_user
    locked = shared / "locked"
    locked.mkdir()
    write_speech(locked / "a.wav", 0.5)
    locked.chmod(0o700 if os.geteuid() == 0 else 0o000)
    unreadable = shared / "unreadable.wav"
    write_speech(unreadable, 0.5)
    unreadable.chmod(0o600 if os.geteuid() == 0 else 0o000)
    readable = shared / "ok.wav"
    write_speech(readable, 0.5)
    readable.chmod(0o644)
    no_write = shared / "nowrite"
    no_write.mkdir()
    no_write.chmod(0o555)
    m = ("--model", str(tiny_model))

    code, err = run("denoise", str(locked / "a.wav"), "-o", str(shared / "o.wav"), *m)
    assert code == 1 and one_error_line(err) == f"streamae: error: {locked / 'a.wav'}: permission denied"
    code, err = run("denoise", str(locked / "a.wav"), "--out-dir", str(shared / "out"), *m)
    assert code == 1 and one_error_line(err) == f"streamae: error: {locked / 'a.wav'}: permission denied"
    code, err = run("denoise", str(locked), "--out-dir", str(shared / "out"), *m)
    assert code == 1 and one_error_line(err, str(locked), "permission denied")
    code, err = run("denoise", str(unreadable), "-o", str(shared / "o.wav"), *m)
    assert code == 1 and one_error_line(err) == f"streamae: error: {unreadable}: permission denied"
    code, err = run("denoise", str(readable), "-o", str(no_write / "o.wav"), *m)
    assert code == 1 and one_error_line(err) == f"streamae: error: {no_write / 'o.wav'}: permission denied"
    code, err = run("denoise", str(readable), "--out-dir", str(no_write / "sub"), *m)
    assert code == 1 and one_error_line(err) == f"streamae: error: {no_write / 'sub'}: permission denied"
    assert os.listdir(no_write) == [] and not (shared / "o.wav").exists()


def test_input_from_a_pipe_is_not_called_empty(tiny_model, tmp_path):
    r = subprocess.run([sys.executable, "-m", "streamae", "denoise", "/dev/stdin", "-o",
                        str(tmp_path / "o.wav"), "--model", str(tiny_model)],
                       input=b"RIFF....", capture_output=True, cwd=REPO)
    assert r.returncode == 1
    assert one_error_line(r.stderr.decode(), "not a regular file (a pipe or a device?)")
    assert os.listdir(tmp_path) == []


def test_out_dir_equal_to_the_input_folder(tiny_model, tmp_path):
    write_speech(tmp_path / "a.wav", 0.5)
    r = streamae("denoise", str(tmp_path), "--out-dir", str(tmp_path), "--model", str(tiny_model))
    assert r.returncode == 1
    assert one_error_line(r.stderr) == \
        f"streamae: error: {tmp_path}: is the input folder too: give --out-dir another folder"


def test_missing_model_names_the_model(tmp_path):
    write_speech(tmp_path / "a.wav", 0.5)
    r = streamae("denoise", str(tmp_path / "a.wav"), "-o", str(tmp_path / "b.wav"), "--model",
                 str(tmp_path / "nosuch.onnx"))
    assert r.returncode == 1
    assert one_error_line(r.stderr) == f"streamae: error: {tmp_path / 'nosuch.onnx'}: model file not found"


def test_mp3_in_wav_out(tiny_model, tmp_path):
    write_speech(tmp_path / "a.mp3", 1.0, 22050, subtype="MPEG_LAYER_III")
    r = streamae("denoise", str(tmp_path / "a.mp3"), "-o", str(tmp_path / "a.wav"),
                 "--model", str(tiny_model))
    assert r.returncode == 0, r.stderr
    info = sf.info(str(tmp_path / "a.wav"))
    assert (info.format, info.subtype, info.samplerate) == ("WAV", "PCM_16", 22050)


@pytest.mark.parametrize("ext,subtype", [("wav", "PCM_24"), ("wav", "FLOAT"), ("aiff", "PCM_16")])
def test_zero_samples_in_an_empty_file_out(tiny_model, tmp_path, ext, subtype):
    src, dst = tmp_path / f"a.{ext}", tmp_path / f"b.{ext}"
    sf.write(src, np.zeros((0, 2), np.float32), 44100, subtype=subtype)
    assert sf.info(str(src)).frames == 0
    r = streamae("denoise", str(src), "-o", str(dst), "--model", str(tiny_model))
    assert r.returncode == 0, r.stderr
    info = sf.info(str(dst))
    assert (info.frames, info.samplerate, info.channels, info.subtype) == (0, 44100, 2, subtype)


def test_truncated_wav_is_cleaned_with_a_warning(tiny_model, tmp_path):
    src, dst = tmp_path / "a.wav", tmp_path / "b.wav"
    write_speech(src, 2.0)  # 32,000 frames
    data = src.read_bytes()
    src.write_bytes(data[: 44 + 2 * 15989])
    r = streamae("denoise", str(src), "-o", str(dst), "--model", str(tiny_model))
    assert r.returncode == 0, r.stderr
    assert f"streamae: warning: {src}: truncated: its header says 32000 frames, 15989 are there" in r.stderr
    assert sf.info(str(dst)).frames == 15989


def test_nan_samples_print_no_numpy_warnings(tiny_model, tmp_path):
    src, dst = tmp_path / "a.wav", tmp_path / "b.wav"
    x = speechlike(1.0)
    x[100:200] = np.nan
    x[300], x[400] = np.inf, -np.inf  # inf + -inf: numpy's 'invalid value' warning
    x[500:502] = 3e38  # their sum overflows: numpy's 'overflow' warning
    sf.write(src, x, 16000, subtype="FLOAT")
    r = streamae("denoise", str(src), "-o", str(dst), "--model", str(tiny_model))
    assert r.returncode == 0, r.stderr
    assert "RuntimeWarning" not in r.stderr and "umr_sum" not in r.stderr, r.stderr
    assert f"streamae: warning: {src}: 102 samples were NaN or infinite; cleaned as silence" in r.stderr
    assert np.isfinite(sf.read(dst)[0]).all()


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT])
def test_stopped_single_file_run_leaves_nothing(tiny_model, tmp_path, how):
    src, out = tmp_path / "long.wav", tmp_path / "out"
    out.mkdir()
    write_speech(src, 300.0)
    run = subprocess.Popen([sys.executable, "-m", "streamae", "denoise", str(src), "-o", str(out / "o.wav"),
                            "--model", str(tiny_model)], cwd=REPO, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: list(out.glob(".*.partial-*")) or run.poll() is not None, 60, "a partial file")
    run.send_signal(how)
    stderr = run.communicate(timeout=10)[1]
    assert run.returncode == (143 if how == signal.SIGTERM else 130), stderr
    assert "Traceback" not in stderr
    assert os.listdir(out) == []


def test_rerun_clears_what_a_killed_single_file_run_left(tiny_model, tmp_path):
    src, out = tmp_path / "long.wav", tmp_path / "out"
    out.mkdir()
    write_speech(src, 300.0)
    cmd = [sys.executable, "-m", "streamae", "denoise", str(src), "-o", str(out / "o.wav"),
           "--model", str(tiny_model)]
    run = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.DEVNULL)
    _wait_for(lambda: list(out.glob(".*.partial-*")) or run.poll() is not None, 60, "a partial file")
    run.kill()
    run.wait()
    assert [p.name for p in out.iterdir()] == [f".o.wav.partial-{run.pid}"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert os.listdir(out) == ["o.wav"]


@pytest.mark.parametrize("realtime", [True, False])
def test_live_recording_on_a_full_disk_fails_and_publishes_nothing(tiny_model, tmp_path, full_disk, capsys,
                                                                 realtime):
    src, out = tmp_path / "in.wav", tmp_path / "out"
    out.mkdir()
    write_speech(src, 2.0, 48000, channels=2, subtype="FLOAT")
    full_disk(100_000)
    started = time.monotonic()
    code = main(["live", "--input-file", str(src), "--record", str(out / "rt.wav"),
                 "--model", str(tiny_model), *(["--realtime"] if realtime else [])])
    err = capsys.readouterr().err
    assert code == 1 and time.monotonic() - started < 10
    assert one_error_line(err) == f"streamae: error: {out / 'rt.wav'}: disk full (no space left on device)"
    assert "live: done" not in err and "Traceback" not in err
    assert os.listdir(out) == []


def test_live_recording_on_a_real_full_disk(tiny_model, tmp_path, tmpfs):
    src = tmp_path / "in.wav"
    write_speech(src, 3.0, 48000, channels=2, subtype="FLOAT")  # 1.15 MB for 1 MiB
    for realtime in ([], ["--realtime"]):
        r = streamae("live", "--input-file", str(src), "--record", str(tmpfs / "rt.wav"),
                     "--model", str(tiny_model), *realtime, timeout=30)
        assert r.returncode == 1, r.stderr
        assert one_error_line(r.stderr) == \
            f"streamae: error: {tmpfs / 'rt.wav'}: disk full (no space left on device)"
        assert "live: done" not in r.stderr
        assert os.listdir(tmpfs) == []
