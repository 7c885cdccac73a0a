"""Anomaly models at run time, on synthetic machine sound: score, eval, monitor (file, folder,
webhook, mic glue) with the tiny fixture model, and the shipped demo model. No torch: training
and export are tested in test_anomaly_training.py. Nothing here reads ../shared.
"""
from __future__ import annotations

import http.server
import json
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from streamae.anomaly.alerts import AlertPolicy, Webhook
from streamae.anomaly.monitor import Monitor, watch_folder
from streamae.anomaly.scorer import AnomalyModel
from streamae.audio import resample
from streamae.cli import main

from conftest import REPO
from support.models import make_machine_data
from support.signals import RATE, machine

DEMO = REPO / "models" / "anomaly-mimii-id00.onnx"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_machine_data(tmp_path_factory.mktemp("machine"))


@pytest.fixture(scope="module")
def model(tiny_anomaly_model) -> Path:
    """The tiny anomaly model fixture: trained on `data`'s recipe (support.models.make_tiny_anomaly)."""
    return tiny_anomaly_model


def test_score_json_lines(model, data, capsys):
    files = [data / "test_normal" / "test_normal_0.wav", data / "test_anomalous" / "test_anomalous_0.wav"]
    assert main(["anomaly", "score", *map(str, files), "--model", str(model), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["file"] for r in lines] == list(map(str, files))
    for r in lines:
        assert {"file", "score", "threshold", "anomalous"} <= set(r)
        assert isinstance(r["score"], float) and isinstance(r["anomalous"], bool)
        assert r["anomalous"] == (r["score"] > r["threshold"])
    assert [r["anomalous"] for r in lines] == [False, True]
    assert lines[1]["score"] > 2 * lines[0]["score"]


def test_eval_is_far_above_chance(model, data, capsys):
    assert main(["anomaly", "eval", "--model", str(model), "--normal", str(data / "test_normal"),
                 "--anomalous", str(data / "test_anomalous"), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["windows"]["auc"] > 0.95 and r["files"]["auc"] == 1.0
    assert r["windows"]["normal"] == r["windows"]["anomalous"] == 3 * 13  # 8 s files, 2 s windows every 0.5 s
    c = r["files"]["at_threshold"]
    assert c["true_positives"] == 3 and c["false_positives"] == 0


def spliced(path: Path, rate: int = RATE) -> float:
    """normal 20 s | anomalous 10 s | normal 20 s; returns the fault's onset."""
    x = np.concatenate([machine(20, 11), machine(10, 11, True), machine(20, 11)])
    sf.write(path, resample(x, RATE, rate), rate)  # the same machine, recorded at another rate
    return 20.0


def test_monitor_file_one_alert_per_fault(model, tmp_path, capsys):
    src = tmp_path / "spliced.flac"
    onset = spliced(src, rate=22050)
    alerts, scores = tmp_path / "alerts.jsonl", tmp_path / "scores.jsonl"
    assert main(["monitor", str(src), "--model", str(model), "--alerts", str(alerts), "--scores", str(scores),
                 "--cooldown", "5"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["event"] for e in printed] == ["anomaly_start", "anomaly_end"]
    start, end = printed
    assert onset < start["offset_s"] < onset + 4.0  # found within 4 s of the onset
    assert onset + 10 < end["offset_s"] < onset + 10 + 4.0
    assert start["score"] > start["threshold"] and "T" in start["time"]
    assert [json.loads(line) for line in alerts.read_text().splitlines()] == printed
    log = [json.loads(line) for line in scores.read_text().splitlines()]
    assert len(log) == 97 and {"offset_s", "score", "above"} <= set(log[0])  # 50 s: windows 2 s every 0.5 s


def test_plot_draws_or_says_what_to_install(model, tmp_path, capsys):
    """--plot needs the optional matplotlib; without it the monitor refuses up front, in one line."""
    src, png = tmp_path / "spliced.wav", tmp_path / "scores.png"
    spliced(src)
    code = main(["monitor", str(src), "--model", str(model), "--plot", str(png), "--quiet"])
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert code == 1 and "pip install 'streamae[plot]'" in capsys.readouterr().err and not png.exists()
    else:
        assert code == 0 and png.read_bytes()[:4] == b"\x89PNG"


def test_monitor_watches_a_folder_for_new_files(model, tmp_path):
    folder = tmp_path / "incoming"
    folder.mkdir()
    sf.write(folder / "old.wav", machine(6, 9, True), RATE)  # there before the watch: ignored
    m = AnomalyModel(model)
    mon = Monitor(m, AlertPolicy(k=2, n=3, cooldown_s=0), [])
    t = threading.Thread(target=watch_folder, args=(mon, folder, 0.05, False, 1.0))
    t.start()
    time.sleep(0.3)
    sf.write(folder / "a.wav", machine(6, 3), RATE)
    sf.write(folder / ".b.wav.partial", machine(6, 4, True), RATE, format="WAV")  # hidden temp file: not read
    time.sleep(0.3)
    (folder / ".b.wav.partial").rename(folder / "b.wav")
    t.join(20)
    assert not t.is_alive()
    assert [s for s in {e.get("source") for e in mon.events} if s] == [str(folder / "b.wav")]
    assert len(mon.history) == 2 * 9  # a.wav and b.wav, 9 windows each; old.wav was not scored
    assert mon.history[9].start_s == pytest.approx(6.0, abs=0.01)  # the time line continues across files


class _Collect(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        self.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@contextmanager
def server(handler):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/alerts"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_webhook_delivers_each_alert(model, tmp_path, capsys):
    src = tmp_path / "spliced.wav"
    spliced(src)
    _Collect.received = []
    with server(_Collect) as url:
        assert main(["monitor", str(src), "--model", str(model), "--webhook", url, "--quiet",
                     "--outbox", str(tmp_path / "outbox")]) == 0
    assert capsys.readouterr().out == ""
    assert [e["event"] for e in _Collect.received] == ["anomaly_start", "anomaly_end"]
    start, end = _Collect.received
    assert start["id"] != end["id"] and end["alert"] == start["id"]
    assert list((tmp_path / "outbox").iterdir()) == []  # delivered: nothing waits


def test_a_dead_or_hanging_webhook_never_stalls_the_audio(model, tmp_path):
    class Hang(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            time.sleep(3)

        def log_message(self, *args):
            pass

    logs: list[str] = []
    m = AnomalyModel(model)
    x = np.concatenate([machine(10, 1), machine(10, 1, True)])
    with server(Hang) as url:
        hook = Webhook(url, tmp_path / "outbox", retry_s=0.5, timeout_s=0.3, backoff_s=0.05, log=logs.append)
        t0 = time.perf_counter()
        for i in range(100):  # 100 alerts queued from the audio side
            hook({"event": "anomaly_start", "i": i})
        queued = time.perf_counter() - t0
        mon = Monitor(m, AlertPolicy(), [hook])
        t0 = time.perf_counter()
        mon.feed((x[i:i + 1600][None] for i in range(0, len(x), 1600)), RATE, 1, "x")
        fed = time.perf_counter() - t0
        left = hook.close(wait_s=1.0)
    assert queued < 0.5  # never waits on the network (100 small files written)
    assert fed < 3.0  # 20 s of audio scored while every post hangs
    assert hook.delivered == 0 and hook.failed >= 1 and any("gave up" in line for line in logs)
    assert left == 101 and len(list((tmp_path / "outbox").glob("*.json"))) == 101  # none lost
    assert "101 alert(s) not delivered" in logs[-1]
    dead = Webhook("http://127.0.0.1:9/none", None, retry_s=0.2, timeout_s=0.2, backoff_s=0.05,
                   log=logs.append)
    dead({"event": "anomaly_start"})
    assert dead.close(wait_s=2.0) == 1 and dead.failed == 1 and "lost: no outbox" in logs[-1]


def test_mic_source_runs_through_the_live_worker(model, monkeypatch, capsys):
    """The mic glue on top of streamae.live.listen, with a fake 44.1 kHz device feeding 100 ms
    blocks: the device is opened at its own rate (not asked for the model's), and converted here."""
    pytest.importorskip("streamae.live")
    from streamae.anomaly import mic
    from streamae.worker import BlockWorker

    device_rate = 44100
    x = resample(np.concatenate([machine(10, 2), machine(8, 2, True)]), RATE, device_rate)

    @contextmanager
    def fake_listen(process_block, *, sample_rate, block_frames, channels, device, history_seconds):
        worker = BlockWorker(
            process_block, block_frames, channels, sample_rate=sample_rate, output=False, lossless=True
        )
        assert sample_rate == device_rate and block_frames == device_rate // 10
        with worker:
            feeder = threading.Thread(target=lambda: (worker.feed(x[:, None]), worker.finish()))
            feeder.start()
            yield worker
            feeder.join()

    fake_live = SimpleNamespace(listen=fake_listen, resolve_device=lambda spec, kind: 3,
                                device_rate=lambda index: device_rate if index == 3 else 0,
                                device_name=lambda index: "fake USB microphone")
    monkeypatch.setattr(mic, "_live", lambda: fake_live)
    mon = Monitor(AnomalyModel(model), AlertPolicy(), [])
    mic.monitor_mic(mon, duration_s=3.0)
    mon.close()
    assert "'fake USB microphone' at 44100 Hz" in capsys.readouterr().err
    assert len(mon.history) == 33  # 18 s of "microphone"
    assert [e["event"] for e in mon.events] == ["anomaly_start", "anomaly_end"]
    assert mon.events[0]["source"] == "mic" and 10 < mon.events[0]["offset_s"] < 14


def test_user_errors_are_one_line(model, tmp_path, capsys):
    short = tmp_path / "short.wav"
    sf.write(short, machine(1.0, 0), RATE)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    for args, msg in (
        (["anomaly", "score", str(tmp_path / "missing.wav"), "--model", str(model)], "no such file"),
        (["anomaly", "score", str(short), "--model", str(model)], "shorter than the model's 2.00 s window"),
        (["anomaly", "score", str(short), "--model", str(bad)], "not a loadable ONNX model"),
        (["monitor", str(short), "--model", str(model), "-k", "5", "-n", "3"], "k <= n"),
        (["monitor", str(short), "--model", str(model), "--webhook", "ftp://x"], "http"),
    ):
        assert main(args) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("streamae: error:") and msg in err and "\n" not in err


def test_shipped_demo_model_flags_the_anomalous_example_only(capsys):
    clips = [REPO / "examples" / "machine" / "normal.flac", REPO / "examples" / "machine" / "anomalous.flac"]
    assert main(["anomaly", "score", *map(str, clips), "--model", str(DEMO), "--json"]) == 0
    normal, anomalous = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert normal["anomalous"] is False and anomalous["anomalous"] is True
    assert anomalous["score"] > normal["threshold"] > normal["score"]
    assert DEMO.stat().st_size < 5e6


def test_one_bad_file_does_not_stop_the_others(model, data, tmp_path, capsys):
    folder = tmp_path / "batch"
    folder.mkdir()
    sf.write(folder / "a_short.wav", machine(1.0, 0), RATE)  # sorts first
    (folder / "._b.wav").write_bytes(b"AppleDouble")  # a hidden metadata file: not audio, not listed
    good = folder / "c_good.wav"
    good.write_bytes((data / "test_normal" / "test_normal_0.wav").read_bytes())
    assert main(["anomaly", "score", str(folder), "--model", str(model), "--json"]) == 1
    out, err = capsys.readouterr()
    assert [json.loads(line)["file"] for line in out.splitlines()] == [str(good)]
    assert json.loads(out)["seconds"] == 8.0  # the file's length, not where its last window ends
    assert err.count("streamae: error:") == 1 and "a_short.wav" in err


def test_eval_says_which_files_were_too_short(model, data, tmp_path, capsys):
    short = tmp_path / "short"
    short.mkdir()
    sf.write(short / "s.wav", machine(1.0, 0, anomalous=True), RATE)
    assert main(["anomaly", "eval", "--model", str(model), "--normal", str(data / "test_normal"),
                 "--anomalous", str(short)]) == 1
    err = capsys.readouterr().err
    assert "no anomalous recording has a 2.00 s window of the machine running" in err and "s.wav" in err


def test_a_rate_too_low_for_the_model_is_refused(model, tmp_path, capsys):
    low = tmp_path / "low.wav"
    sf.write(low, resample(machine(4.0, 1), RATE, 8000), 8000)
    assert main(["anomaly", "score", str(low), "--model", str(model)]) == 1
    assert "recorded at 8000 Hz" in capsys.readouterr().err


def test_nan_in_the_audio_scores_as_silence_there(model, tmp_path, capsys):
    x = machine(4.0, 2).astype(np.float32)
    clean, broken = tmp_path / "clean.wav", tmp_path / "broken.wav"
    sf.write(clean, np.where(np.arange(len(x)) == 3000, 0, x), RATE, subtype="FLOAT")
    x[3000] = np.nan
    sf.write(broken, x, RATE, subtype="FLOAT")
    assert main(["anomaly", "score", str(clean), str(broken), "--model", str(model), "--json"]) == 0
    a, b = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert a["score"] == b["score"] and np.isfinite(a["score"])


def test_an_alert_still_open_at_the_end_names_its_source(model, data):
    from streamae.anomaly.monitor import Monitor

    monitor = Monitor(AnomalyModel(model), AlertPolicy(), sinks=[])
    path = data / "test_anomalous" / "test_anomalous_0.wav"  # faulty from start to end
    monitor.feed_file(path)
    monitor.close()
    assert [e["event"] for e in monitor.events] == ["anomaly_start", "anomaly_end"]
    assert monitor.events[-1]["reason"] == "stream ended"
    assert all(e["source"] == str(path) for e in monitor.events)


def test_the_monitors_microphone_option_is_named_for_what_it_chooses():
    """-i/--input-device picks the microphone, as in `streamae live`; --device, its old name, still
    works (elsewhere --device means cpu or cuda)."""
    from streamae.cli import build_parser

    for flag in ("-i", "--input-device", "--device"):
        args = build_parser().parse_args(["monitor", "mic", "--model", "m.onnx", flag, "USB"])
        assert args.input_device == "USB"
    assert build_parser().parse_args(["monitor", "mic", "--model", "m.onnx"]).input_device is None


def test_plot_without_matplotlib_leaves_no_output_files(model, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    src = tmp_path / "spliced.wav"
    spliced(src)
    alerts, scores, png = tmp_path / "alerts.jsonl", tmp_path / "scores.jsonl", tmp_path / "x.png"
    code = main(["monitor", str(src), "--model", str(model), "--plot", str(png), "--alerts", str(alerts),
                 "--scores", str(scores), "--quiet"])
    assert code == 1
    assert capsys.readouterr().err.strip() == \
        "streamae: error: --plot needs matplotlib: pip install 'streamae[plot]'"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spliced.wav"]


@pytest.mark.parametrize("command", ["score", "monitor"])
def test_a_rate_the_model_cannot_use_names_the_file(model, tmp_path, capsys, command):
    src = tmp_path / "phone.wav"
    sf.write(src, machine(3.0, 1, rate=8000), 8000)
    args = ["anomaly", "score", str(src)] if command == "score" else ["monitor", str(src), "--quiet"]
    assert main([*args, "--model", str(model)]) == 1
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"streamae: error: {src}: recorded at 8000 Hz, but this model listens up to ")
