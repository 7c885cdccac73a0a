"""A tiny training run (seconds): trains, checkpoints, resumes, exports two agreeing graphs."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort

from streamae import Denoiser
from conftest import noise, speechlike, train_tiny


def test_exported_model_loads_and_reports_itself(tiny_model):
    d = Denoiser(tiny_model)
    assert d.sample_rate == 16000
    assert d.info["training"]["steps"] == 4
    y = d.process(speechlike(1.0) + noise(1.0), 16000)
    assert y.shape == (16000,) and np.isfinite(y).all() and np.abs(y).max() > 0


def test_step_graph_has_explicit_states(tiny_model):
    step = ort.InferenceSession(str(tiny_model.with_name("tiny.step.onnx")), providers=["CPUExecutionProvider"])
    inputs = [i.name for i in step.get_inputs()]
    outputs = [o.name for o in step.get_outputs()]
    assert inputs[0] == "audio" and len(inputs) == 1 + 3 + 2  # encoder, 3 blocks, decoder
    assert outputs == ["clean"] + [f"{n}_out" for n in inputs[1:]]


def test_training_resumes_from_its_checkpoint(tiny_model, capsys):
    root = tiny_model.parent
    code = train_tiny(root, root / "run", "--steps", "6", "--log-every", "2")
    assert code == 0
    out = capsys.readouterr().out
    assert "resumed" in out and "at step 4" in out
    assert '"steps": 6' in out


def test_a_non_finite_batch_is_skipped_not_learned(tiny_model, tmp_path, monkeypatch, capsys):
    import torch

    from streamae.train import data

    real = data.Mixer.batch
    calls = {"n": 0}

    def poisoned(self, size):
        noisy, clean = real(self, size)
        calls["n"] += 1
        if calls["n"] == 2:
            noisy[0, 100] = float("nan")
        return noisy, clean

    monkeypatch.setattr(data.Mixer, "batch", poisoned)
    root = tiny_model.parent
    run = tmp_path / "run"
    assert train_tiny(root, run, "--steps", "3", "--code", "32", "--bottleneck", "16", "--hidden", "16",
                      "--dilations", "1") == 0
    assert '"skipped_batches": 1' in capsys.readouterr().out
    weights = torch.load(run / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())


def test_training_can_start_from_other_weights(tiny_model, tmp_path, capsys):
    import torch

    root = tiny_model.parent
    source = torch.load(root / "run" / "checkpoint.pt", weights_only=False)
    assert train_tiny(root, tmp_path / "ft", "--init", str(root / "run" / "checkpoint.pt"), "--steps", "1") == 0
    assert "initialised from" in capsys.readouterr().out
    tuned = torch.load(tmp_path / "ft" / "checkpoint.pt", weights_only=False)
    assert tuned["config"] == source["config"] and tuned["step"] == 1  # its config, a new schedule
