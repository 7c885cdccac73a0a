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


def test_exported_graphs_equal_the_torch_model(tiny_model):
    """The runtime (step graph, streamed by numpy) against the PyTorch model it was exported from."""
    import torch

    from streamae.train.config import DenoiserConfig
    from streamae.train.model import DenoiserNet

    saved = torch.load(tiny_model.with_suffix(".pt"), weights_only=False)
    net = DenoiserNet(DenoiserConfig.from_dict(saved["config"])).eval()
    net.load_state_dict(saved["model"])
    x = speechlike(1.0, seed=3) + noise(1.0, seed=4)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)[None])[0].numpy()
    y = Denoiser(tiny_model).process(x, 16000)
    edge = 2 * net.config.hop  # the last frames: torch stops at the end, the stream pads silence
    np.testing.assert_allclose(y[:-edge], expected[:-edge], atol=1e-5)
    assert np.abs(y - x).max() > 0.01  # the mask network really changes the signal


def test_step_graph_has_explicit_states(tiny_model):
    step = ort.InferenceSession(str(tiny_model.with_name("tiny.step.onnx")), providers=["CPUExecutionProvider"])
    inputs = [i.name for i in step.get_inputs()]
    outputs = [o.name for o in step.get_outputs()]
    assert inputs[0] == "audio" and len(inputs) == 1 + 3 + 2  # encoder, 3 blocks, decoder
    history = step.get_inputs()[1].shape[-1]
    assert history == 240 - 80  # the look-back window, not the 160-sample frame, sets the input history
    assert outputs == ["clean"] + [f"{n}_out" for n in inputs[1:]]


def test_training_resumes_from_its_checkpoint(tiny_model, capsys):
    root = tiny_model.parent
    code = train_tiny(root, root / "run", "--steps", "6", "--log-every", "2")
    assert code == 0
    out = capsys.readouterr().out
    assert "resumed" in out and "at step 4" in out
    assert '"steps": 6' in out


def test_resuming_and_init_restore_the_weights(tiny_model, tmp_path):
    import shutil

    import torch

    from streamae.train.config import DenoiserConfig
    from streamae.train.model import DenoiserNet

    root, run = tiny_model.parent, tmp_path / "run"
    shutil.copytree(root / "run", run)
    saved = torch.load(run / "checkpoint.pt", weights_only=False)
    assert train_tiny(root, run, "--steps", str(saved["step"])) == 0  # resumed with nothing left to do
    resumed = torch.load(run / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(saved["model"][k], resumed[k]) for k in saved["model"])
    assert train_tiny(root, tmp_path / "ft", "--init", str(run / "checkpoint.pt"), "--steps", "1", "--lr", "0") == 0
    started = torch.load(tmp_path / "ft" / "checkpoint.pt", weights_only=False)["model"]
    names = [n for n, _ in DenoiserNet(DenoiserConfig.from_dict(saved["config"])).named_parameters()]
    assert all(torch.equal(saved["model"][n], started[n]) for n in names)  # learning rate 0: only the load


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


def test_a_look_back_spectrum_joins_trained_weights_without_changing_them(tiny_model):
    """Fine-tuning with --context-window starts from exactly the model it was given."""
    import torch

    from streamae.train.config import DenoiserConfig
    from streamae.train.model import DenoiserNet

    ckpt = torch.load(tiny_model.parent / "run" / "checkpoint.pt", weights_only=False)
    plain_config = DenoiserConfig.from_dict({**ckpt["config"], "context_window": 0})
    plain = DenoiserNet(plain_config)
    plain.load_state_dict({k: v for k, v in ckpt["model"].items() if not k.startswith("context")})
    grown = DenoiserNet(DenoiserConfig.from_dict({**ckpt["config"], "context_window": 400}))
    missing, unexpected = grown.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("context") for k in missing)
    x = torch.from_numpy(speechlike(1.0) + noise(1.0))[None]
    with torch.no_grad():
        torch.testing.assert_close(grown.eval()(x), plain.eval()(x), atol=1e-6, rtol=0)


def test_fine_tuning_grows_a_look_back_spectrum_and_resumes(tiny_model, tmp_path, capsys):
    """--init plain weights + --context-window: loaded weights learn --init-lr-scale times slower,
    the new branch at full rate, and a resumed run keeps both groups."""
    import torch

    from streamae.train.config import DenoiserConfig
    from streamae.train.model import DenoiserNet

    plain = DenoiserNet(DenoiserConfig(code=32, bottleneck=16, hidden=16, dilations=(1, 2)))
    torch.save({"model": plain.state_dict(), "config": plain.config.to_dict()}, tmp_path / "plain.pt")
    root, run = tiny_model.parent, tmp_path / "ft"
    assert train_tiny(root, run, "--init", str(tmp_path / "plain.pt"), "--context-window", "240",
                      "--init-lr-scale", "0.1", "--steps", "2") == 0
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    assert ckpt["config"]["context_window"] == 240
    assert [g["lr_scale"] for g in ckpt["optimizer"]["param_groups"]] == [0.1, 1.0]
    new = [k for k in ckpt["model"] if k.startswith("context") and k not in ckpt["from_init"]]
    assert new and set(ckpt["from_init"]) <= set(plain.state_dict())
    assert train_tiny(root, run, "--steps", "3") == 0
    assert "resumed" in capsys.readouterr().out
    resumed = torch.load(run / "checkpoint.pt", weights_only=False)
    assert resumed["step"] == 3 and [g["lr_scale"] for g in resumed["optimizer"]["param_groups"]] == [0.1, 1.0]


def test_a_non_finite_loss_is_skipped_and_its_batch_kept_for_diagnosis(tiny_model, tmp_path, monkeypatch, capsys):
    import torch

    from streamae.train import train_denoiser

    real = train_denoiser.multi_resolution_stft
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        value = real(*args, **kwargs)
        return value * float("nan") if calls["n"] == 2 else value

    monkeypatch.setattr(train_denoiser, "multi_resolution_stft", flaky)
    run = tmp_path / "run"
    assert train_tiny(tiny_model.parent, run, "--steps", "2", "--code", "32", "--bottleneck", "16", "--hidden", "16",
                      "--dilations", "1") == 0
    assert '"skipped_batches": 1' in capsys.readouterr().out
    kept = torch.load(run / "nonfinite-1.pt", weights_only=False)
    assert kept["noisy"].shape == kept["clean"].shape and torch.isfinite(kept["noisy"]).all()
    assert kept["stft"] != kept["stft"]  # the NaN term is recorded as such
    weights = torch.load(run / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())


def test_stft_loss_has_finite_gradients_where_the_estimate_is_nearly_silent():
    """Near-silent stretches of the estimate give zero and denormal STFT bins (|z| ~ 1e-41), where
    complex abs() back-propagates NaN: the cause of the rare non-finite training batches."""
    import torch

    from streamae.train.losses import multi_resolution_stft

    target = torch.from_numpy(speechlike(1.0))[None]
    estimate = target.clone()
    estimate[:, 4000:8000] = 0.0
    estimate[:, -4000:] = 1e-40 * torch.randn(4000)  # at the end: the last elements take the scalar path
    estimate.requires_grad_(True)
    loss = multi_resolution_stft(estimate, target, target + torch.from_numpy(noise(1.0))[None])
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(estimate.grad).all()


def test_bad_training_options_fail_before_any_training(tmp_path, capsys):
    from streamae.cli import main

    base = ["train", "denoiser", "--speech", str(tmp_path), "--noise", str(tmp_path), "--run-dir", str(tmp_path / "r")]
    anomaly = ["anomaly", "train", "--normal", str(tmp_path), "-o", str(tmp_path / "m.onnx")]
    for args, reason in ((base + ["--minutes", "0"], "no training budget"),
                         (base + ["--export", str(tmp_path / "mine")], "ends in .onnx"),
                         (base + ["--init", str(tmp_path / "missing.pt")], "no such file"),
                         (anomaly + ["--minutes", "0", "--steps", "0"], "no training budget"),
                         (anomaly + ["--percentile", "150"], "--percentile must be in (0, 100]")):
        assert main(args) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("streamae: error:") and reason in err and "\n" not in err, args
