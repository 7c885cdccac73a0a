"""Anomaly training end to end on synthetic machine sound (seconds): train, export, calibrate,
resume; the ONNX scores against the torch model. Needs the `train` extra (torch)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from streamae.anomaly.scorer import AnomalyModel  # noqa: E402
from streamae.cli import main  # noqa: E402

from support.models import TINY_ANOMALY, make_machine_data, make_tiny_anomaly  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_machine_data(tmp_path_factory.mktemp("machine"))


@pytest.fixture(scope="module")
def model(data) -> Path:
    """A tiny model trained through the CLI for a few seconds (step budget), exported and calibrated."""
    return make_tiny_anomaly(data, data / "tiny.onnx")


def test_the_fixture_model_is_what_its_recipe_makes(model, data):
    """tests/fixtures/tiny-anomaly.onnx, which the runtime tests run without torch, is this recipe's
    model (`cd tests && python -m support.models` remakes it)."""
    fixture, fresh = AnomalyModel(TINY_ANOMALY), AnomalyModel(model)
    for key in ("kind", "features", "net", "score"):
        assert fixture.info[key] == fresh.info[key], key
    assert fixture.info["training"]["steps"] == fresh.info["training"]["steps"]
    clip = data / "test_anomalous" / "test_anomalous_0.wav"
    fixture_scores = [w.score for w in fixture.file_window_scores(clip)]
    fresh_scores = [w.score for w in fresh.file_window_scores(clip)]
    np.testing.assert_allclose(fixture_scores, fresh_scores, rtol=1e-2)
    assert fixture.threshold == pytest.approx(fresh.threshold, rel=1e-2)


def test_export_reloads_with_calibrated_threshold_and_card(model, data):
    m = AnomalyModel(model)
    assert m.info["kind"] == "anomaly" and m.info["training"]["steps"] == 150
    from streamae.anomaly.alerts import AlertPolicy
    from streamae.anomaly.calibrate import count_alerts, held_out_scores, run_levels

    how = m.info["calibration"]
    assert how["policy"] == {"k": 3, "n": 4, "cooldown_s": 30.0} and len(how["held_out"]) == 3
    assert how["target_false_alerts_per_hour"] == pytest.approx(1 / 24)
    assert how["expected_false_alerts_per_hour"] <= how["target_false_alerts_per_hour"]
    streams = held_out_scores(m, sorted((data / "val").iterdir()), 0.5)  # as they are, and as a day has them
    assert len(streams) == 6 and m.threshold > run_levels(streams[0], AlertPolicy()).max()
    assert how["held_out_false_alerts"] == count_alerts(streams, m.threshold, AlertPolicy()) == 0
    card = json.loads(model.with_suffix(".json").read_text())
    assert card["threshold"] == m.threshold and 0.0 <= card["sparsity"]["zero_fraction"] <= 1.0
    assert card["sparsity"]["zero_fraction"] > 0.05  # the ReLU code with its L1 penalty is really sparse


def test_onnx_scores_equal_the_torch_model(model, data):
    from streamae.anomaly.features import file_frames, window_at
    from streamae.train.anomaly import NetConfig, SparseConvAE

    ckpt = torch.load(data / "run" / "checkpoint.pt", weights_only=False)
    net = SparseConvAE(NetConfig.from_dict(ckpt["net"]))
    net.load_state_dict(ckpt["model"])
    m = AnomalyModel(model)
    frames = file_frames(data / "test_anomalous" / "test_anomalous_0.wav", m.features)
    wins = np.stack([window_at(frames, s, m.features) for s in (0, 100, 250)])
    with torch.no_grad():
        expected = net.eval()(torch.from_numpy(wins))[0].numpy()
    np.testing.assert_allclose(m.score_windows(wins), expected, rtol=1e-4)


def test_score_combines_a_worst_band_and_a_worst_frames_view(model, data):
    """A narrowband fault shows in one band all window long, a rattle in all bands for a few
    frames: each lifts its own view, and the score is the larger, in normal-spread units."""
    from streamae.train.anomaly import NetConfig, SparseConvAE

    ckpt = torch.load(data / "run" / "checkpoint.pt", weights_only=False)
    net = SparseConvAE(NetConfig.from_dict(ckpt["net"]))
    net.load_state_dict(ckpt["model"])
    assert net.top_frames == 6 and bool((net.score_scale != 1).all()) and bool((net.score_center > 0).all())
    base = net.band_center[None, :, None].expand(1, 64, 122).clone()  # every band at its normal error
    tone, rattle = base.clone(), base.clone()
    tone[0, 20] += 1.0
    rattle[0, :, 50:54] += 1.0
    v = net.views(torch.cat([base, tone, rattle]))
    lift = (v[1:] - v[:1]) / net.score_scale  # [tone, rattle] x [band view, frame view], in normal spreads
    assert lift[0, 0] > 5 * lift[0, 1]  # the tone lifts the band view
    assert lift[1, 1] > 3 * lift[1, 0]  # the rattle lifts the frame view
    with torch.no_grad():
        x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 64, 122), np.float32))
        score, zin = net.eval()(x)[0], (x - net.mean) / net.std
        z = (net.views((net.decoder(net.encoder(zin)) - zin).pow(2)) - net.score_center) / net.score_scale
    torch.testing.assert_close(score, z.amax(dim=1))
    described = AnomalyModel(model).info["score"]
    assert "worst 5 % of frames" in described and "each band's mean minus its median" in described


def test_the_band_view_counts_each_band_in_its_own_normal_spread(model, data):
    """The same excess error lifts the band view most in the band the model reconstructs most
    steadily on normal sound, and least in the one it reconstructs most erratically: a faint
    whine in a quiet, well-modelled band is not drowned by a band that is always noisy."""
    from streamae.train.anomaly import NetConfig, SparseConvAE

    ckpt = torch.load(data / "run" / "checkpoint.pt", weights_only=False)
    net = SparseConvAE(NetConfig.from_dict(ckpt["net"]))
    net.load_state_dict(ckpt["model"])
    assert bool((net.band_scale != 1).all()) and float(net.band_scale.max()) > 2 * float(net.band_scale.min())
    steady, erratic = int(net.band_scale.argmin()), int(net.band_scale.argmax())
    base = net.band_center[None, :, None].expand(1, 64, 122).clone()
    bumps = base.repeat(2, 1, 1)
    excess = float(net.band_scale.max())
    bumps[0, steady] += excess
    bumps[1, erratic] += excess
    band_view = net.views(torch.cat([base, bumps]))[:, 0]
    assert float(band_view[1]) > float(band_view[2]) + 0.5 * excess / float(net.band_scale.min())
    assert float(band_view[0]) == pytest.approx(0.0, abs=1e-5)  # every band at its normal median
    assert float(band_view[2]) == pytest.approx(1.0, rel=1e-4)  # one normal spread of the erratic band


def test_training_resumes_from_its_checkpoint(model, data, capsys):
    path = data / "resumed.onnx"
    run = data / "run2"
    args = [
        "anomaly",
        "train",
        "--normal",
        str(data / "train"),
        "--val-normal",
        str(data / "val"),
        "-o",
        str(path),
        "--run-dir",
        str(run),
        "--batch",
        "8",
        "--hidden",
        "16",
        "--code",
        "4",
        "--threads",
        "2",
    ]
    assert main(args + ["--steps", "20"]) == 0
    saved = torch.load(run / "checkpoint.pt", weights_only=False)["model"]
    assert main(args + ["--steps", "20"]) == 1  # the model exists: refused, not silently resumed
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    args.append("--overwrite")
    assert main(args + ["--steps", "20"]) == 0  # resumed with nothing left to do: the weights must come back
    resumed = torch.load(run / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(saved[k], resumed[k]) for k in saved)
    assert main(args + ["--steps", "30"]) == 0
    out = capsys.readouterr().out
    assert "resumed" in out and "at step 20" in out
    assert AnomalyModel(path).info["training"]["steps"] == 30


def test_existing_model_is_refused_and_a_rate_too_low_named(data, tmp_path, capsys):
    existing = tmp_path / "m.onnx"
    existing.write_bytes(b"an older model")
    assert main(["anomaly", "train", "--normal", str(data / "train"), "-o", str(existing),
                 "--steps", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"streamae: error: {existing}: already exists; pass --overwrite")
    assert existing.read_bytes() == b"an older model"
    phone = tmp_path / "phone"
    phone.mkdir()
    for name in ("a.wav", "b.wav"):
        sf.write(phone / name, np.zeros(8000 * 3, np.float32), 8000)
    assert main(["anomaly", "train", "--normal", str(phone), "-o", str(tmp_path / "new.onnx"),
                 "--run-dir", str(tmp_path / "run"), "--steps", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"streamae: error: {phone}/") and ".wav: recorded at 8000 Hz" in err[-1]
