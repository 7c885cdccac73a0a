"""`--ray` without the cluster extra: one clear line, before any file is touched (runs everywhere)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import soundfile as sf

from conftest import REPO

WITHOUT_RAY = "import sys; sys.modules['ray'] = None; from streamae.cli import main; sys.exit(main())"


def test_ray_without_the_extra_says_how_to_install(tiny_model, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "a.wav", np.zeros(1600), 16000)
    r = subprocess.run([sys.executable, "-c", WITHOUT_RAY, "denoise", str(src), "--out-dir",
                        str(tmp_path / "out"), "--model", str(tiny_model), "--ray"],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 1
    assert r.stderr == "streamae: error: --ray needs the cluster extra: pip install 'streamae[cluster]'\n"
    assert not (tmp_path / "out").exists()


def test_anomaly_score_ray_without_the_extra_says_how_to_install(tiny_anomaly_model, tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros(64000), 16000)
    r = subprocess.run([sys.executable, "-c", WITHOUT_RAY, "anomaly", "score", str(tmp_path / "a.wav"),
                        "--model", str(tiny_anomaly_model), "--ray"],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == "streamae: error: --ray needs the cluster extra: pip install 'streamae[cluster]'\n"


def test_ray_needs_out_dir(tiny_model, tmp_path):
    r = subprocess.run([sys.executable, "-m", "streamae", "denoise", str(tmp_path / "a.wav"), "-o",
                        str(tmp_path / "b.wav"), "--ray"], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 1 and "--ray cleans many files: give --out-dir DIR" in r.stderr, r.stderr


def test_ray_with_an_object_store_says_so_before_anything_else(tiny_model, tmp_path):
    """The same line as the local batch's (tests/test_batch_denoise.py), before Ray is even looked for."""
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "a.wav", np.zeros(1600), 16000)
    r = subprocess.run([sys.executable, "-c", WITHOUT_RAY, "denoise", str(src), "--out-dir", "s3://bucket/clean",
                        "--model", str(tiny_model), "--ray"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.startswith("streamae: error: s3://bucket/clean: object stores are not supported;"), \
        r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
