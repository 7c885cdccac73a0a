"""`streamae denoise ... --ray` (issue 24): a real local Ray cluster (2 CPUs) gives what the local
batch gives, resumes, and survives a worker killed mid-file.

Ray registers on the machine's non-loopback interface even when told 127.0.0.1, so each run goes
in a network namespace of its own where loopback is the only interface (`unshare -n`, as root):
nothing leaves the machine. The cluster is started by the command and stopped when it ends.
Skipped where ray (the cluster extra) is not installed or `unshare -n` is not permitted.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO
from support.signals import relative_files as files
from support.signals import write_mixed_tree
from support.signals import write_noisy_speech as write


def _namespace_works() -> bool:
    if not (shutil.which("unshare") and shutil.which("ip")):
        return False
    try:
        r = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True,
                           timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                       reason="ray not installed (pip install -e '.[cluster]')"),
    pytest.mark.skipif(sys.platform != "linux" or not _namespace_works(),
                       reason="needs `unshare -n` (root) for a loopback-only network namespace"),
]


def denoise_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "streamae", "denoise", *args]


def in_namespace(cmd: list[str]) -> list[str]:
    """`cmd` in a new network namespace with loopback up (and nothing else)."""
    return ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *cmd]


def run(cmd: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=timeout)




def assert_same_outputs(a: Path, b: Path) -> None:
    assert files(a) == files(b)
    for name in files(a):
        ia, ib = sf.info(str(a / name)), sf.info(str(b / name))
        assert (ia.format, ia.subtype, ia.samplerate, ia.channels, ia.frames) == \
            (ib.format, ib.subtype, ib.samplerate, ib.channels, ib.frames), name
        xa, xb = sf.read(str(a / name), always_2d=True)[0], sf.read(str(b / name), always_2d=True)[0]
        np.testing.assert_allclose(xa, xb, atol=1e-4, err_msg=name)


@pytest.fixture
def tree(tmp_path) -> Path:
    src = write_mixed_tree(tmp_path / "in")
    write(src / "calls" / "old" / "e.wav", 0.3, 22050, channels=3, seed=4)
    return src


def test_ray_matches_the_local_batch_and_resumes(tiny_model, tree, tmp_path):
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    common = [str(tree), "--recursive", "--jobs", "2", "--model", str(tiny_model)]
    r = run(denoise_cmd(*common, "--out-dir", str(local)))
    assert r.returncode == 0, r.stderr

    r = run(in_namespace(denoise_cmd(*common, "--out-dir", str(on_ray), "--ray")))
    assert r.returncode == 0, r.stderr
    assert "with 2 Ray worker(s)" in r.stderr and "done 5" in r.stderr, r.stderr
    assert "[5/5 files]" in r.stderr  # progress
    assert_same_outputs(local, on_ray)
    assert not list(on_ray.rglob(".*.partial-*"))

    before = {name: (on_ray / name).stat().st_mtime_ns for name in files(on_ray)}
    r = run(in_namespace(denoise_cmd(*common, "--out-dir", str(on_ray), "--ray")))
    assert r.returncode == 0, r.stderr
    assert "done 0" in r.stderr and "skipped 5: already done" in r.stderr, r.stderr
    assert {name: (on_ray / name).stat().st_mtime_ns for name in files(on_ray)} == before


def test_a_worker_killed_mid_file_loses_and_doubles_nothing(tiny_model, tmp_path):
    src, local, on_ray = tmp_path / "in", tmp_path / "local", tmp_path / "ray"
    for i in range(4):
        write(src / f"f{i}.wav", 40.0, 16000, seed=i)
    common = [str(src), "--jobs", "2", "--model", str(tiny_model)]
    r = run(denoise_cmd(*common, "--out-dir", str(local)))
    assert r.returncode == 0, r.stderr

    cmd = in_namespace(denoise_cmd(*common, "--out-dir", str(on_ray), "--ray"))
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (partial := list(on_ray.glob(".*.partial-*"))):  # a worker is mid-file
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.002)
        victim = int(partial[0].name.rsplit("-", 1)[1])  # same PID namespace: the Ray worker's PID
        os.kill(victim, signal.SIGKILL)
        stderr = proc.communicate(timeout=120)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert "done 4" in stderr and "failed 0" in stderr, stderr  # the killed file was retried
    assert not list(on_ray.glob(".*.partial-*"))  # the dead worker's temporary file is gone
    assert_same_outputs(local, on_ray)


def test_ray_cannot_be_reached_is_one_line(tiny_model, tree, tmp_path):
    r = run(in_namespace(denoise_cmd(str(tree), "--recursive", "--out-dir", str(tmp_path / "out"),
                                     "--model", str(tiny_model), "--ray", "127.0.0.1:1")), timeout=60)
    assert r.returncode == 1
    assert "streamae: error: cannot reach the Ray cluster at 127.0.0.1:1" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_anomaly_score_on_ray_gives_the_local_scores_in_order(tiny_anomaly_model, tmp_path):
    src = tmp_path / "in"
    write(src / "a.wav", 4.0, 16000)
    write(src / "m" / "b.flac", 3.5, 44100, channels=2, seed=1)
    write(src / "m" / "c.wav", 5.0, 48000, seed=2)
    write(src / "m" / "d.wav", 0.2, 8000, seed=3)  # shorter than a window: one error line, exit 1
    write(src / "e.wav", 4.5, 22050, channels=3, seed=4)
    cmd = [sys.executable, "-m", "streamae", "anomaly", "score", str(src / "a.wav"), str(src / "m"),
           str(src / "e.wav"), "--model", str(tiny_anomaly_model), "--json"]
    local = run(cmd)
    on_ray = run(in_namespace([*cmd, "--ray", "--jobs", "2"]))
    assert local.returncode == on_ray.returncode == 1, (local.stderr, on_ray.stderr)
    rows = [json.loads(line) for line in local.stdout.splitlines()]
    ray_rows = [json.loads(line) for line in on_ray.stdout.splitlines()]
    assert [r["file"] for r in ray_rows] == [r["file"] for r in rows] and len(rows) == 4
    for a, b in zip(rows, ray_rows):
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], float):
                assert b[key] == pytest.approx(a[key], rel=1e-6, abs=1e-9), key
            else:
                assert b[key] == a[key], key
    errors = [line for line in local.stderr.splitlines() if line.startswith("streamae: error:")]
    assert len(errors) == 1 and errors[0] in on_ray.stderr.splitlines(), on_ray.stderr


# -- --device cuda: GPU workers (no GPU here: what can be checked without one) -------------------
def _has_cuda_provider() -> bool:
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has a GPU")
def test_device_cuda_on_a_cluster_without_a_gpu_is_one_line(tiny_model, tree, tmp_path):
    """Not workers waiting forever for a GPU that no node has."""
    out = tmp_path / "out"
    r = run(in_namespace(denoise_cmd(str(tree), "--recursive", "--out-dir", str(out), "--model",
                                     str(tiny_model), "--device", "cuda", "--ray")))
    assert r.returncode == 1
    assert "streamae: error: --device cuda: no node of the Ray cluster has a GPU" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists()


# A cluster that declares one GPU (Ray takes the count on trust): the workers hold it, and the
# command, joining that cluster, says on every file that this onnxruntime cannot use it.
WITH_A_GPU = """
import json, subprocess, sys
import ray
from streamae import cluster
ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
try:
    held = [ids for _, ids in cluster.map_on_ray(ray, [0], int, cluster.keep,
                                                 lambda state, item: ray.get_gpu_ids(), 1, gpu=True)]
    cli = subprocess.run([sys.executable, "-m", "streamae", "denoise", *sys.argv[1:], "--device", "cuda",
                          "--ray", ray.get_runtime_context().gcs_address], capture_output=True, text=True)
finally:
    ray.shutdown()
print(json.dumps({"held": held, "rc": cli.returncode, "stderr": cli.stderr}))
"""


@pytest.mark.skipif(_has_cuda_provider(), reason="this onnxruntime has CUDA")
def test_device_cuda_asks_ray_for_gpus_and_says_when_onnxruntime_cannot_use_them(tiny_model, tree, tmp_path):
    out = tmp_path / "out"
    r = run(in_namespace([sys.executable, "-c", WITH_A_GPU, str(tree), "--recursive", "--out-dir", str(out),
                          "--model", str(tiny_model)]), timeout=180)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert [len(ids) for ids in result["held"]] == [1]  # a worker with gpu=True holds one GPU
    stderr = result["stderr"]
    assert result["rc"] == 1, stderr
    assert "with 1 Ray worker(s) on GPUs" in stderr, stderr  # one per GPU
    reason = (": --device cuda: this onnxruntime has no CUDA provider (install onnxruntime-gpu with a "
              "matching CUDA)")
    failed = [line for line in stderr.splitlines() if line.startswith("failed: ") and line.endswith(reason)]
    assert len(failed) == 5, stderr
    assert "done 0" in stderr and "failed 5" in stderr and "Traceback" not in stderr, stderr
    assert not list(out.rglob("*.*"))
