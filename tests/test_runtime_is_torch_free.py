"""The runtime never imports torch (nor streamae.train): checked in a fresh interpreter, end to end.
What each module imports when it loads is checked by reading it, in test_torch_boundary.py."""
from __future__ import annotations

import subprocess
import sys

from conftest import REPO

CHECK = """
import sys, numpy as np, soundfile as sf
from streamae.cli import main
sf.write(sys.argv[1], (0.1 * np.random.default_rng(0).standard_normal(16000)).astype('float32'), 16000)
assert main(["denoise", sys.argv[1], "-o", sys.argv[2], "--model", sys.argv[3]]) == 0
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "onnxscript")
                or m.startswith("streamae.train"))
assert not leaked, leaked
print("ok")
"""


def test_denoise_never_imports_torch(tiny_model, tmp_path):
    r = subprocess.run([sys.executable, "-c", CHECK, str(tmp_path / "in.wav"), str(tmp_path / "out.wav"),
                        str(tiny_model)], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1] == "ok", r.stderr


ANOMALY_CHECK = """
import sys
from streamae.cli import main
model, normal, anomalous, out = sys.argv[1:5]
assert main(["anomaly", "score", normal, anomalous, "--model", model, "--json"]) == 0
assert main(["anomaly", "eval", "--model", model, "--normal", normal, "--anomalous", anomalous]) == 0
assert main(["monitor", anomalous, "--model", model, "--alerts", out, "--quiet"]) == 0
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "onnxscript")
                or m.startswith("streamae.train"))
assert not leaked, leaked
print("ok")
"""


def test_anomaly_runtime_never_imports_torch(tmp_path):
    """Score, eval and monitor with the shipped demo anomaly model in a fresh interpreter."""
    machine = REPO / "examples" / "machine"
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            ANOMALY_CHECK,
            str(REPO / "models" / "anomaly-mimii-id00.onnx"),
            str(machine / "normal.flac"),
            str(machine / "anomalous.flac"),
            str(tmp_path / "alerts.jsonl"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1] == "ok", r.stderr
