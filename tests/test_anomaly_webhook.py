"""Webhook delivery is at least once (issue 22): retries with backoff, an on-disk outbox that
survives a restart, an id on each alert, and at exit a count of what was not delivered with a
non-zero exit status. Receivers run on 127.0.0.1 only."""
from __future__ import annotations

import http.server
import json
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from streamae.anomaly.alerts import Webhook
from streamae.cli import main
from streamae.cli.monitor import EXIT_UNDELIVERED

from support.signals import RATE, machine


class Receiver(http.server.BaseHTTPRequestHandler):
    """Answers 500 to the first `fail` posts, then 204; records what it accepted."""
    fail = 0
    seen: list = []
    accepted: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((body, self.headers.get("Idempotency-Key")))
        if type(self).fail > 0:
            type(self).fail -= 1
            self.send_response(500)
        else:
            type(self).accepted.append(body)
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def serve(handler, port: int = 0):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def url_of(httpd) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}/alerts"


@pytest.fixture
def receiver():
    Receiver.fail, Receiver.seen, Receiver.accepted = 0, [], []
    httpd = serve(Receiver)
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_failed_posts_are_retried_with_backoff_until_delivered(receiver, tmp_path):
    Receiver.fail = 3
    logs: list[str] = []
    hook = Webhook(url_of(receiver), tmp_path / "outbox", retry_s=60, backoff_s=0.05, log=logs.append)
    for i in range(3):
        hook({"event": "anomaly_start", "id": f"a{i}"})
    hook({"event": "machine_silent", "id": "s"})  # a state, not an alert: not posted
    assert hook.close(wait_s=10) == 0
    assert [e["id"] for e in Receiver.accepted] == ["a0", "a1", "a2"]  # each once, in order
    assert len(Receiver.seen) == 6 and all(body["id"] == key for body, key in Receiver.seen)
    assert hook.delivered == 3 and list((tmp_path / "outbox").iterdir()) == []
    assert any("retrying" in line for line in logs) and any("delivering again" in line for line in logs)


def test_alerts_survive_a_restart_in_the_outbox(tmp_path):
    logs: list[str] = []
    dead = "http://127.0.0.1:9/alerts"  # nothing listens on port 9
    hook = Webhook(dead, tmp_path / "outbox", retry_s=0.3, timeout_s=0.2, backoff_s=0.05, log=logs.append)
    for i in range(2):
        hook({"event": "anomaly_start", "id": f"b{i}"})
    assert hook.close(wait_s=1.0) == 2 and "2 alert(s) not delivered" in logs[-1]
    assert len(list((tmp_path / "outbox").glob("*.json"))) == 2
    Receiver.fail, Receiver.seen, Receiver.accepted = 0, [], []
    httpd = serve(Receiver)
    try:  # the next run, on the same outbox, sends them first
        again = Webhook(url_of(httpd), tmp_path / "outbox", retry_s=5, log=logs.append)
        again({"event": "anomaly_end", "id": "b2"})
        assert again.close(wait_s=5) == 0
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert [e["id"] for e in Receiver.accepted] == ["b0", "b1", "b2"]
    assert any("from an earlier run" in line for line in logs)


def test_the_monitor_counts_undelivered_alerts_and_exits_non_zero(tmp_path, capsys, tiny_anomaly_model):
    """The issue's case: a receiver that does not answer in time; the single file's alerts are
    not dropped in silence: a line counts them, they stay in the outbox, the exit status says so."""
    class Slow(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            time.sleep(2)

        def log_message(self, *args):
            pass

    normal, broken = machine(10.0, 1), machine(10.0, 1, True)
    sf.write(tmp_path / "x.wav", np.concatenate([normal[:5 * RATE], broken[5 * RATE:]]), RATE)
    httpd = serve(Slow)
    try:
        code = main(["monitor", str(tmp_path / "x.wav"), "--model", str(tiny_anomaly_model), "--quiet",
                     "--webhook", url_of(httpd), "--outbox", str(tmp_path / "outbox"),
                     "--webhook-retry", "0.5"])
    finally:
        httpd.shutdown()
        httpd.server_close()
    err = capsys.readouterr().err
    assert code == EXIT_UNDELIVERED
    assert "2 alert(s) not delivered" in err and "outbox" in err
    events = [json.loads(p.read_text()) for p in sorted((tmp_path / "outbox").glob("*.json"))]
    assert [e["event"] for e in events] == ["anomaly_start", "anomaly_end"] and all(e["id"] for e in events)
