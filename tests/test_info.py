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


def test_info_list_shows_each_named_denoiser_from_its_card(capsys):
    from streamae.runtime import DENOISERS

    assert main(["info", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in lines[1:-1]}
    assert set(rows) == set(DENOISERS)
    assert rows["live"][2:4] == ["9.9", "ms"] and rows["quality"][2:4] == ["31.9", "ms"]
    assert all(float(r[4]) > 0 and 1.0 < float(r[5]) < 4.5 for r in rows.values())  # CPU x DTLN, PESQ-WB


def test_a_denoiser_is_named_or_a_path(capsys):
    assert main(["info", "quality"]) == 0
    assert json.loads(capsys.readouterr().out)["latency_samples"] == 511
    assert main(["info", "qualty"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no shipped denoiser is named 'qualty' (live, quality)" in err[0]
