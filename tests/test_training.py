"""A tiny training run (seconds): trains, checkpoints, resumes, exports two agreeing graphs."""
from __future__ import annotations

import os
import signal

import pytest

torch = pytest.importorskip("torch")  # the whole module trains or exports: the `train` extra

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

from streamae import Denoiser  # noqa: E402

from conftest import noise, speechlike  # noqa: E402
from support.models import TINY_DENOISER, TINY_SHAPE, train_tiny  # noqa: E402


def test_exported_model_loads_and_reports_itself(trained_tiny_model):
    d = Denoiser(trained_tiny_model)
    assert d.sample_rate == 16000
    assert d.info["training"]["steps"] == 4
    y = d.process(speechlike(1.0) + noise(1.0), 16000)
    assert y.shape == (16000,) and np.isfinite(y).all() and np.abs(y).max() > 0


def test_the_fixture_model_is_what_its_recipe_makes(trained_tiny_model):
    """tests/fixtures/tiny.onnx, which the runtime tests run without torch, is this recipe's model
    (`cd tests && python -m support.models` remakes it when the exporter changes)."""
    fixture, fresh = Denoiser(TINY_DENOISER), Denoiser(trained_tiny_model)
    untimed = [{k: v for k, v in d.info["training"].items() if k != "minutes"} for d in (fixture, fresh)]
    assert fixture.info["config"] == fresh.info["config"] and untimed[0] == untimed[1]
    assert [(i.name, i.shape) for i in fixture.session.get_inputs()] == \
        [(i.name, i.shape) for i in fresh.session.get_inputs()]
    assert [o.name for o in fixture.session.get_outputs()] == [o.name for o in fresh.session.get_outputs()]
    x = speechlike(1.0) + noise(1.0)
    np.testing.assert_allclose(fixture.process(x, 16000), fresh.process(x, 16000), atol=1e-3)


def _tiny(front_end: str, request):
    """The tiny exported model with the learned filterbank (trained), the spectral front end, the
    learned front end with a recurrent mask network, or the spectral one with a GRU and a deep filter
    (or the phase input alone)."""
    fixtures = {
        "learned": "trained_tiny_model",
        "spectral": "tiny_spectral_model",
        "recurrent": "tiny_recurrent_model",
        "deep-filter": "tiny_deep_filter_model",
        "phase-input": "tiny_phase_input_model",
    }
    return request.getfixturevalue(fixtures[front_end])


@pytest.mark.parametrize("front_end", ["learned", "spectral", "recurrent", "deep-filter", "phase-input"])
def test_exported_graphs_equal_the_torch_model(front_end, request):
    """The runtime (step graph, streamed by numpy) against the PyTorch model it was exported from."""

    from streamae.train.config import DenoiserConfig
    from streamae.train.model import DenoiserNet

    trained_tiny_model = _tiny(front_end, request)
    saved = torch.load(trained_tiny_model.with_suffix(".pt"), weights_only=False)
    net = DenoiserNet(DenoiserConfig.from_dict(saved["config"])).eval()
    net.load_state_dict(saved["model"])
    x = speechlike(1.0, seed=3) + noise(1.0, seed=4)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)[None])[0].numpy()
    y = Denoiser(trained_tiny_model).process(x, 16000)
    edge = 2 * net.config.hop  # the last frames: torch stops at the end, the stream pads silence
    np.testing.assert_allclose(y[:-edge], expected[:-edge], atol=1e-5)
    assert np.abs(y - x).max() > 0.01  # the mask network really changes the signal
    stream = Denoiser(trained_tiny_model).stream()  # 10 ms chunks: every state is carried from call to call
    chunks = [stream.process(x[i: i + 160]) for i in range(0, len(x), 160)] + [stream.flush()]
    np.testing.assert_allclose(np.concatenate(chunks)[stream.latency_samples:], y, atol=1e-5)


@pytest.mark.parametrize(
    "front_end, history, mask_states",
    [
        ("learned", 160 - 80, 3),
        ("spectral", 3 * 80 - 80, 3),
        ("recurrent", 160 - 80, 1),
        ("deep-filter", 3 * 80 - 80, 2),
        ("phase-input", 3 * 80 - 80, 2),
    ],
)
def test_step_graph_has_explicit_states(front_end, history, mask_states, request):
    """The analysis window, not the 160-sample synthesis frame, sets the input history, rounded
    up to whole hops (the step graph frames its input by reshaping it into hops)."""
    trained_tiny_model = _tiny(front_end, request)
    step = ort.InferenceSession(
        str(trained_tiny_model.with_name("tiny.step.onnx")), providers=["CPUExecutionProvider"]
    )
    inputs = [i.name for i in step.get_inputs()]
    outputs = [o.name for o in step.get_outputs()]
    # encoder, then 3 blocks, or the GRU [and the low band's past frames], then decoder
    assert inputs[0] == "audio" and len(inputs) == 1 + mask_states + 2
    assert step.get_inputs()[1].shape[-1] == history
    assert outputs == ["clean"] + [f"{n}_out" for n in inputs[1:]]
    assert Denoiser(trained_tiny_model).latency_samples == 159  # the synthesis window alone sets the latency


def test_training_resumes_from_its_checkpoint(trained_tiny_model, capsys):
    root = trained_tiny_model.parent
    code = train_tiny(root, root / "run", "--steps", "6", "--log-every", "2")
    assert code == 0
    out = capsys.readouterr().out
    assert "resumed" in out and "at step 4" in out
    assert '"steps": 6' in out


def test_resuming_and_init_restore_the_weights(trained_tiny_model, tmp_path):
    import shutil

    from streamae.train.config import DenoiserConfig
    from streamae.train.model import DenoiserNet

    root, run = trained_tiny_model.parent, tmp_path / "run"
    shutil.copytree(root / "run", run)
    saved = torch.load(run / "checkpoint.pt", weights_only=False)
    assert train_tiny(root, run, "--steps", str(saved["step"])) == 0  # resumed with nothing left to do
    resumed = torch.load(run / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(saved["model"][k], resumed[k]) for k in saved["model"])
    assert (
        train_tiny(root, tmp_path / "ft", "--init", str(run / "checkpoint.pt"), "--steps", "1", "--lr", "0")
        == 0
    )
    started = torch.load(tmp_path / "ft" / "checkpoint.pt", weights_only=False)["model"]
    names = [n for n, _ in DenoiserNet(DenoiserConfig.from_dict(saved["config"])).named_parameters()]
    assert all(torch.equal(saved["model"][n], started[n]) for n in names)  # learning rate 0: only the load


def test_a_non_finite_batch_is_skipped_not_learned(trained_tiny_model, tmp_path, monkeypatch, capsys):

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
    root = trained_tiny_model.parent
    run = tmp_path / "run"
    assert train_tiny(root, run, "--steps", "3", "--code", "32", "--bottleneck", "16", "--hidden", "16",
                      "--dilations", "1") == 0
    assert '"skipped_batches": 1' in capsys.readouterr().out
    weights = torch.load(run / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())


def test_training_can_start_from_other_weights(trained_tiny_model, tmp_path, capsys):

    root = trained_tiny_model.parent
    source = torch.load(root / "run" / "checkpoint.pt", weights_only=False)
    assert train_tiny(root, tmp_path / "ft", "--init", str(root / "run" / "checkpoint.pt"), "--steps", "1",
                      "--suppression-weight", "50", "--log-every", "1") == 0
    out = capsys.readouterr().out
    assert "initialised from" in out and "| over 0." in out  # a fine-tune with the over-suppression term
    tuned = torch.load(tmp_path / "ft" / "checkpoint.pt", weights_only=False)
    assert tuned["config"] == source["config"] and tuned["step"] == 1  # its config, a new schedule


def test_the_asymmetric_stft_reconstructs_the_input_exactly():
    """Mask one everywhere: the spectral front end passes audio through, one synthesis window late."""

    from streamae.train.config import DenoiserConfig
    from streamae.train.model import DenoiserNet

    net = DenoiserNet(DenoiserConfig(analysis_window=512, bottleneck=8, hidden=8, dilations=(1,))).eval()
    with torch.no_grad():
        net.mask.bias.fill_(60.0)  # sigmoid(60) == 1 in float32
        x = torch.from_numpy(speechlike(1.0) + noise(1.0))[None]
        clean, _, code = net.step(x, net.initial_states(1))
    delay = net.config.window - net.config.hop
    torch.testing.assert_close(clean[0, 512 + delay:], x[0, 512:-delay], atol=2e-6, rtol=0)
    rms = x.pow(2).mean().sqrt()
    assert 0.5 < float(code.pow(2).mean().sqrt() / rms) < 2  # per bin, the code keeps the input's scale


def test_the_spectral_front_end_resolves_what_the_learned_one_cannot():
    """Two tones 75 Hz apart (a low voice's harmonic spacing): two peaks in the 512-sample
    asymmetric analysis, one lump in the 160-sample window. This is what the longer window is for."""

    from streamae.train.model import asymmetric_stft

    t = torch.arange(8000, dtype=torch.float64) / 16000
    x = (torch.sin(2 * torch.pi * 1000 * t) + torch.sin(2 * torch.pi * 1075 * t)).float()[None, None]
    for window, separated in ((512, True), (160, False)):
        basis, _ = asymmetric_stft(window, 160)  # at 160 it is a plain symmetric 10 ms window
        re, im = torch.nn.functional.conv1d(x, basis, stride=80)[0].chunk(2)
        power = (re * re + im * im).mean(-1)
        peaks = [k for k in range(1, len(power) - 1) if power[k] > power[k - 1] and power[k] > power[k + 1]
                 and power[k] > 0.1 * power.max()]
        assert (len(peaks) == 2) == separated, (window, peaks)


def test_training_with_the_spectral_front_end_resumes(trained_tiny_model, tmp_path, capsys):

    root, run = trained_tiny_model.parent, tmp_path / "spectral"
    small = ("--bottleneck", "8", "--hidden", "8", "--dilations", "1")
    assert train_tiny(root, run, "--analysis-window", "320", *small, "--steps", "2") == 0
    assert train_tiny(root, run, "--steps", "3") == 0
    assert "resumed" in capsys.readouterr().out
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 3 and ckpt["config"]["analysis_window"] == 320
    assert not any(k.startswith("encoder") for k in ckpt["model"])  # a fixed basis, not learned


def test_init_weights_of_another_architecture_are_refused(trained_tiny_model, tmp_path, capsys):
    """--init with --analysis-window would otherwise silently train the init's architecture."""
    root = trained_tiny_model.parent
    assert train_tiny(root, tmp_path / "x", "--init", str(root / "run" / "checkpoint.pt"),
                      "--analysis-window", "512", "--steps", "1") == 1
    assert "--init fixes the architecture" in capsys.readouterr().err
    assert not (tmp_path / "x" / "checkpoint.pt").exists()


def _widened(model_path, hidden: int):
    """-> (the saved GRU model, the same grown to `hidden` units, a test input)."""

    from streamae.train.config import DenoiserConfig
    from streamae.train.grow import grow
    from streamae.train.model import DenoiserNet

    saved = torch.load(model_path.with_suffix(".pt"), weights_only=False)
    narrow = DenoiserNet(DenoiserConfig.from_dict(saved["config"])).eval()
    narrow.load_state_dict(saved["model"])
    wide_config = DenoiserConfig.from_dict({**saved["config"], "hidden": hidden})
    wide = DenoiserNet(wide_config).eval()
    wide.load_state_dict(grow(saved["model"], narrow.config, wide_config))
    return narrow, wide, torch.from_numpy(np.stack([speechlike(1.0, seed=3) + noise(1.0, seed=4)]))


def test_widening_the_gru_keeps_the_output_and_lets_the_new_units_learn(tiny_recurrent_model):

    narrow, wide, audio = _widened(tiny_recurrent_model, 40)
    with torch.no_grad():
        expected = narrow(audio)
    out = wide(audio)
    assert torch.allclose(out, expected, atol=1e-6, rtol=0)
    assert wide.gru.weight_hh_l1.shape == (3 * 40, 40)
    out.pow(2).sum().backward()  # the new units' silent outgoing weights get gradient at once
    assert wide.mask.weight.grad[:, 24:].abs().max() > 0
    assert wide.gru.weight_hh_l0.grad[:24, 24:].abs().max() > 0


@pytest.mark.parametrize("front_end", ["deep-filter", "phase-input"])
def test_adding_a_deep_filter_or_phase_input_keeps_the_output_and_lets_it_learn(front_end, request):

    from streamae.train.config import DenoiserConfig
    from streamae.train.grow import grow
    from streamae.train.model import DenoiserNet

    saved = torch.load(_tiny(front_end, request).with_suffix(".pt"), weights_only=False)
    config = DenoiserConfig.from_dict(saved["config"])
    plain_config = DenoiserConfig.from_dict({**saved["config"], "deep_filter": 0, "phase_input": False})
    plain = DenoiserNet(plain_config).eval()  # the same weights without the deep filter
    plain.load_state_dict(
        {k: v for k, v in saved["model"].items() if not k.startswith(("taps.", "phase_features."))}
    )
    grown = DenoiserNet(config).eval()
    grown.load_state_dict(grow(plain.state_dict(), plain_config, config))
    audio = torch.from_numpy(np.stack([speechlike(1.0, seed=3) + noise(1.0, seed=4)]))
    with torch.no_grad():
        expected = plain(audio)
    out = grown(audio)
    assert torch.allclose(out, expected, atol=1e-6, rtol=0)
    out.pow(2).sum().backward()
    assert grown.phase_features.weight.grad.abs().max() > 0
    learned = grown.phase_features.weight
    if config.deep_filter:
        assert grown.taps.weight.grad.abs().max() > 0
        learned = grown.taps.bias
    with torch.no_grad():  # and once it has learned, it changes the output
        learned.fill_(0.1)
        assert (grown(audio) - expected).abs().max() > 1e-3


@pytest.mark.parametrize("options, accepted", [
    (("--hidden", "40"), True),
    (("--hidden", "16"), False),  # narrower: would drop what the units learned
    (("--hidden", "40", "--bottleneck", "20"), False),  # only the GRU width may grow
])
def test_init_can_widen_a_gru_model_and_nothing_else(
    trained_tiny_model, tiny_recurrent_model, tmp_path, capsys, options, accepted
):

    root = trained_tiny_model.parent  # its synthetic speech and noise
    shape = ("--code", "32", "--bottleneck", "16", "--recurrent", "2")
    code = train_tiny(
        root,
        tmp_path / "run",
        "--init",
        str(tiny_recurrent_model.with_suffix(".pt")),
        *shape,
        *options,
        "--steps",
        "1",
    )
    captured = capsys.readouterr()
    if accepted:
        assert code == 0 and "widened the GRU layers from 24 to 40" in captured.out
        assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["config"]["hidden"] == 40
    else:
        assert code == 1 and "only a GRU's --hidden may grow" in captured.err
        assert not (tmp_path / "run" / "checkpoint.pt").exists()


@pytest.mark.parametrize("options, refusal", [
    (("--analysis-window", "200", "--deep-filter", "3"), None),
    (("--analysis-window", "200", "--phase-input"), None),
    (("--deep-filter", "3"), "need the spectral front end"),  # the learned front end
    (("--phase-input",), "need the spectral front end"),
    (("--analysis-window", "200", "--deep-filter", "1"), "needs at least 2 taps"),
])
def test_init_can_add_a_deep_filter_or_phase_input_to_a_spectral_model(
    trained_tiny_model, tmp_path, capsys, options, refusal
):

    from streamae.train.config import DenoiserConfig
    from streamae.train.model import DenoiserNet

    shape = ("--bottleneck", "16", "--hidden", "16", "--recurrent", "1")
    init = tmp_path / "init.pt"
    config = DenoiserConfig(analysis_window=200, bottleneck=16, hidden=16, recurrent=1)
    torch.save({"config": config.to_dict(), "model": DenoiserNet(config).state_dict()}, init)
    code = train_tiny(
        trained_tiny_model.parent, tmp_path / "run", "--init", str(init), *shape, *options, "--steps", "1"
    )
    captured = capsys.readouterr()
    if refusal is None:
        added = "added a deep filter of 3 taps" if "--deep-filter" in options else "added the phase input"
        assert code == 0 and added in captured.out
        saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["config"]
        assert (saved["deep_filter"], saved["phase_input"]) == (
            (3, False) if "--deep-filter" in options else (0, True)
        )
    else:
        assert code == 1 and refusal in captured.err
        assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_a_non_finite_loss_is_skipped_and_its_batch_kept_for_diagnosis(
    trained_tiny_model, tmp_path, monkeypatch, capsys
):

    from streamae.train import train_denoiser

    real = train_denoiser.multi_resolution_stft
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        value = real(*args, **kwargs)
        return value * float("nan") if calls["n"] == 2 else value

    monkeypatch.setattr(train_denoiser, "multi_resolution_stft", flaky)
    run = tmp_path / "run"
    assert train_tiny(trained_tiny_model.parent, run, "--steps", "2", *TINY_SHAPE, "--dilations", "1") == 0
    assert '"skipped_batches": 1' in capsys.readouterr().out
    kept = torch.load(run / "nonfinite-1.pt", weights_only=False)
    assert kept["noisy"].shape == kept["clean"].shape and torch.isfinite(kept["noisy"]).all()
    assert kept["stft"] != kept["stft"]  # the NaN term is recorded as such
    weights = torch.load(run / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())


def test_stft_loss_has_finite_gradients_where_the_estimate_is_nearly_silent():
    """Near-silent stretches of the estimate give zero and denormal STFT bins (|z| ~ 1e-41), where
    complex abs() back-propagates NaN: the cause of the rare non-finite training batches."""

    from streamae.train.losses import multi_resolution_stft

    target = torch.from_numpy(speechlike(1.0))[None]
    estimate = target.clone()
    estimate[:, 4000:8000] = 0.0
    estimate[:, -4000:] = 1e-40 * torch.randn(4000)  # at the end: the last elements take the scalar path
    estimate.requires_grad_(True)
    loss = multi_resolution_stft(estimate, target, target + torch.from_numpy(noise(1.0))[None])
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(estimate.grad).all()


def test_over_suppression_charges_only_for_speech_the_estimate_lost():

    from streamae.train.losses import over_suppression

    target = torch.from_numpy(speechlike(1.0))[None]
    noisy = target + torch.from_numpy(noise(1.0))[None]
    assert over_suppression(target, target, noisy).item() == pytest.approx(0.0, abs=1e-9)
    # residual noise costs far less than speech 6 dB down
    assert (
        over_suppression(noisy, target, noisy).item()
        < 0.25 * over_suppression(0.5 * target, target, noisy).item()
    )
    lost_half = target.clone()
    lost_half[:, 8000:] = 0.0
    assert over_suppression(lost_half, target, noisy) > over_suppression(0.5 * target, target, noisy) > 0
    estimate = (0.5 * target).requires_grad_(True)
    over_suppression(estimate, target, noisy).backward()
    assert torch.isfinite(estimate.grad).all() and estimate.grad.abs().sum() > 0


def test_the_intelligibility_term_is_zero_for_the_clean_speech_and_grows_with_noise():

    from streamae.train.losses import intelligibility

    target = torch.from_numpy(speechlike(3.0))[None]
    perfect = intelligibility(target, target).item()
    assert perfect < 0.01  # not 0: bands the test signal leaves empty correlate with nothing
    white = torch.from_numpy(noise(3.0, level=1.0))[None]
    power = target.pow(2).mean()
    at = {snr: target + white * (power / 10 ** (snr / 10)).sqrt() for snr in (20, 5, -5)}
    scores = [intelligibility(at[snr], target).item() for snr in (20, 5, -5)]
    assert perfect + 0.01 < scores[0] < scores[1] < scores[2] < 1
    # STOI normalises the estimate's level, and so does this term
    assert intelligibility(0.1 * at[5], target).item() == pytest.approx(scores[1], abs=1e-4)
    estimate = at[5].clone().requires_grad_(True)
    intelligibility(estimate, target).backward()
    assert torch.isfinite(estimate.grad).all() and estimate.grad.abs().sum() > 0


def test_the_intelligibility_term_sees_above_4_khz_only_with_more_bands():
    """STOI's 15 bands end at 4.3 kHz, so losing a fricative band costs nothing there; 18 reach 8 kHz."""

    from streamae.train.losses import intelligibility

    rate, seconds = 16000, 3.0
    t = np.arange(int(rate * seconds)) / rate
    hiss = np.fft.irfft(
        np.fft.rfft(noise(seconds, level=0.05)) * (np.fft.rfftfreq(len(t), 1 / rate) > 5000), len(t)
    )
    target = torch.from_numpy(
        (speechlike(seconds) + hiss * (np.sin(2 * np.pi * 2.0 * t) > 0.5)).astype(np.float32)
    )[None]
    spectrum = np.fft.rfft(target[0].numpy())
    spectrum[np.fft.rfftfreq(len(t), 1 / rate) > 4500] = 0
    without_hiss = torch.from_numpy(np.fft.irfft(spectrum, len(t)).astype(np.float32))[None]
    for bands in (15, 18):
        perfect = intelligibility(target, target, bands=bands).item()
        lost = intelligibility(without_hiss, target, bands=bands).item() - perfect
        assert lost < 0.01 if bands == 15 else lost > 0.03, (bands, lost)


def test_bad_training_options_fail_before_any_training(tmp_path, capsys):
    from streamae.cli import main

    base = [
        "train",
        "denoiser",
        "--speech",
        str(tmp_path),
        "--noise",
        str(tmp_path),
        "--run-dir",
        str(tmp_path / "r"),
    ]
    anomaly = ["anomaly", "train", "--normal", str(tmp_path), "-o", str(tmp_path / "m.onnx")]
    for args, reason in ((base + ["--minutes", "0"], "no training budget"),
                         (base + ["--init", str(tmp_path / "missing.pt")], "no such file"),
                         (base + ["--stoi-weight", "-1"], "--stoi-weight must be 0 or more"),
                         (anomaly + ["--minutes", "0", "--steps", "0"], "no training budget"),
                         (anomaly + ["--percentile", "150"], "--percentile must be in (0, 100]")):
        assert main(args) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("streamae: error:") and reason in err and "\n" not in err, args


def test_stop_after_ends_the_sitting_checkpointed_and_the_run_goes_on(trained_tiny_model, tmp_path, capsys):
    """--stop-after ends this sitting early without ending the schedule; the next sitting resumes
    and the run finishes (and exports) only when its budget is spent."""

    root, run, out = trained_tiny_model.parent, tmp_path / "run", tmp_path / "m.onnx"
    small = ("--bottleneck", "8", "--hidden", "8", "--dilations", "1", "--export", str(out))
    assert train_tiny(root, run, *small, "--minutes", "30", "--stop-after", "0.01") == 0
    assert "the same command resumes it" in capsys.readouterr().out
    first = torch.load(run / "checkpoint.pt", weights_only=False)
    assert 0 < first["elapsed"] < 60 and not out.exists() and not (run / "summary.json").exists()
    assert train_tiny(root, run, *small, "--minutes", "30", "--steps", str(first["step"] + 2)) == 0
    assert "resumed" in capsys.readouterr().out
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == first["step"] + 2 and out.exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_asks_the_training_loop_to_stop_and_handlers_are_restored(sig):
    from streamae.train.loop import GracefulStop

    before = signal.getsignal(sig)
    with GracefulStop() as stop:
        assert stop.reason is None
        os.kill(os.getpid(), sig)
        assert stop.reason == sig.name
        with pytest.raises(KeyboardInterrupt):  # asked twice: stop now
            os.kill(os.getpid(), sig)
    assert signal.getsignal(sig) is before


def test_the_module_entry_reports_errors_in_one_line(tmp_path):
    """`python -m streamae.train.train_denoiser` goes through the CLI: a bad run says why in one
    line and exits non-zero, not with a traceback."""
    import subprocess
    import sys

    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamae.train.train_denoiser",
            "--speech",
            str(tmp_path),
            "--noise",
            str(tmp_path),
            "--minutes",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "streamae: error: no training budget: give --minutes or --steps above 0"
    ]


def test_dropping_the_deep_filter_leaves_the_model_with_silent_taps(tiny_deep_filter_model):
    """export_denoiser.py --drop-deep-filter: the phase input stays, the taps' output goes."""
    from streamae.train.config import DenoiserConfig
    from streamae.train.grow import without_deep_filter
    from streamae.train.model import DenoiserNet

    saved = torch.load(tiny_deep_filter_model.with_suffix(".pt"), weights_only=False)
    dropped = without_deep_filter(saved)
    without = DenoiserNet(DenoiserConfig.from_dict(dropped["config"])).eval()
    without.load_state_dict(dropped["model"])
    silenced = DenoiserNet(DenoiserConfig.from_dict(saved["config"])).eval()
    silenced.load_state_dict(saved["model"])
    with torch.no_grad():
        silenced.taps.weight.zero_()
        silenced.taps.bias.zero_()
        audio = torch.from_numpy(np.stack([speechlike(1.0, seed=3) + noise(1.0, seed=4)]))
        assert without.config.phase_input and not without.config.deep_filter
        assert torch.allclose(without(audio), silenced(audio), atol=1e-6, rtol=0)


def test_interpolated_weights_run_from_the_grown_start_to_the_tuned_model(tiny_deep_filter_model):
    """interpolate_weights.py: alpha 0 is the start (grown to the tuned shape), 1 the tuned
    model, and 0.5 lies halfway, weight for weight."""
    from streamae.train.config import DenoiserConfig
    from streamae.train.grow import grow, interpolate
    tuned = torch.load(tiny_deep_filter_model.with_suffix(".pt"), weights_only=False)
    start_config = DenoiserConfig.from_dict({**tuned["config"], "deep_filter": 0})
    start = {"config": start_config.to_dict(),
             "model": {k: v + 1.0 if v.is_floating_point() else v for k, v in tuned["model"].items()
                       if not k.startswith(("taps.", "phase_features."))}}
    grown = grow(start["model"], start_config, DenoiserConfig.from_dict(tuned["config"]))
    for alpha in (0.0, 0.5, 1.0):
        mixed = interpolate(start, tuned, alpha)["model"]
        for name, value in tuned["model"].items():
            if value.is_floating_point():
                torch.testing.assert_close(mixed[name], grown[name] + alpha * (value - grown[name]))


def test_a_deep_filter_model_can_be_widened_too(tiny_deep_filter_model):
    """Its taps read the GRU's units as the mask does: the new units' columns start at zero."""

    narrow, wide, audio = _widened(tiny_deep_filter_model, 24)
    with torch.no_grad():
        assert torch.allclose(wide(audio), narrow(audio), atol=1e-6, rtol=0)
