"""`streamae info`: the model card a user sees comes from the model file itself."""
from __future__ import annotations

import json

from streamae.cli import main


def test_info_prints_the_models_metadata(tiny_model, capsys):
    assert main(["info", str(tiny_model)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "denoiser"
    assert info["config"]["window"] - 1 == 159 and info["config"]["code"] == 32
    assert info["training"]["steps"] == 4 and 0 < info["sparsity"]["zero_fraction"] < 1


def test_info_reads_anomaly_models_too(capsys):
    from conftest import REPO

    assert main(["info", str(REPO / "models" / "anomaly-mimii-id00.onnx")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "anomaly" and info["threshold"] > 0
    assert "alert level" in info["score"]  # how a file is judged, as `streamae anomaly score` does it
    assert "CC BY-SA" in json.dumps(info)  # the card beside it (data and licence) is shown too


def test_info_shows_the_shipped_denoisers_scores(capsys):
    assert main(["info"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "denoiser" and info["latency_samples"] == 159
    assert info["dev"]["streamae"]["si_sdr"] > info["dev"]["noisy"]["si_sdr"]


def test_info_on_a_missing_model_is_one_line(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope.onnx")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("streamae: error:") and "not found" in err[0]
