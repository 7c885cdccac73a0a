#!/usr/bin/env python3
"""A private userspace PulseAudio server with two null sinks: a virtual microphone and speaker.

    paplay --device=mic clip.wav   ->  "mic" sink  ->  mic.monitor (the default source)
    streamae live                  ->  "speaker" sink (the default sink)  ->  speaker.monitor

Works as root without D-Bus or sound hardware (CI). The server and its keep-alive readers
(a `parec` on each monitor, so the null sinks render in small blocks and new streams start
in ~50 ms instead of 1-2 s) are started and stopped by PID. Clients find the server through
PULSE_SERVER in `env`; PortAudio reaches it through ALSA's pulse plugin ("default"/"pulse").

    with PulseLoopback(rate=48000) as pulse:
        subprocess.run(["paplay", "--device=mic", "clip.wav"], env=pulse.env)

Command line: `cd tests && python -m support.pulse_loopback check` exits 0 if a server can start here.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOOLS = ("pulseaudio", "pactl", "paplay", "parec")


def available() -> str | None:
    """None if PulseAudio can run here, else why not."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"missing {', '.join(missing)} (apt-get install pulseaudio pulseaudio-utils)"
    return None


def require_pulse() -> None:
    """Skip a test where PulseAudio or PortAudio is missing; `.ci/run` installs both and sets
    STREAMAE_REQUIRE_PULSE=1, which turns the skip into a failure."""
    import pytest

    why = available()
    if why is None:
        try:
            import sounddevice  # noqa: F401
        except OSError as e:
            why = f"PortAudio missing ({e})"
    if why:
        if os.environ.get("STREAMAE_REQUIRE_PULSE"):
            pytest.fail(f"STREAMAE_REQUIRE_PULSE is set but {why}")
        pytest.skip(why)


class PulseLoopback:
    def __init__(self, rate: int = 48000, channels: int = 1, rt_priority: int = 0):
        """rt_priority: run the server SCHED_FIFO (as rtkit would on a desktop); needs root."""
        self.rate, self.channels, self.rt_priority = rate, channels, rt_priority
        self.dir = Path(tempfile.mkdtemp(prefix="streamae-pulse-"))
        self.socket = self.dir / "native"
        self.env = {
            **os.environ,
            "PULSE_SERVER": f"unix:{self.socket}",
            "PULSE_RUNTIME_PATH": str(self.dir),
            "XDG_RUNTIME_DIR": str(self.dir),
            "PULSE_STATE_PATH": str(self.dir),
            "HOME": str(self.dir),
            "PULSE_COOKIE": str(self.dir / "cookie"),
        }
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> "PulseLoopback":
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _start(self) -> None:
        config = self.dir / "server.pa"
        sink = f"rate={self.rate} channels={self.channels} format=float32le"
        config.write_text(
            f"load-module module-native-protocol-unix auth-anonymous=1 socket={self.socket}\n"
            f"load-module module-null-sink sink_name=mic {sink}\n"
            f"load-module module-null-sink sink_name=speaker {sink}\n"
            "set-default-source mic.monitor\nset-default-sink speaker\n")
        fifo = ["chrt", "-f", str(self.rt_priority)] if self.rt_priority else []
        self._spawn(fifo + ["pulseaudio", "-n", "-F", str(config), "--daemonize=no", "--exit-idle-time=-1",
                     "--disallow-exit", "--use-pid-file=no", "--system=no", "--disable-shm=yes",
                     "--log-target=stderr", "--log-level=error"])
        self._wait_ready()
        for monitor in ("mic.monitor", "speaker.monitor"):  # keep-alive readers, output discarded
            self._spawn(["parec", f"--device={monitor}", "--latency-msec=10", f"--rate={self.rate}",
                         f"--channels={self.channels}", "--format=float32le", "--raw"])
        time.sleep(0.2)
        for name in ("mic", "speaker"):  # once after load: rendering then switches to small blocks
            self.pactl("suspend-sink", name, "1")
            self.pactl("suspend-sink", name, "0")

    def pactl(self, *args: str) -> str:
        return subprocess.run(["pactl", *args], env=self.env, check=True, capture_output=True, text=True,
                              timeout=10).stdout

    def _spawn(self, cmd: list[str]) -> None:
        self.procs.append(
            subprocess.Popen(
                cmd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE if "pulseaudio" in cmd else subprocess.DEVNULL,
            )
        )

    def _wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[0].poll() is not None:
                raise RuntimeError(
                    f"pulseaudio exited: {self.procs[0].stderr.read().decode(errors='replace')[-500:]}"
                )
            if (
                subprocess.run(["pactl", "info"], env=self.env, capture_output=True, timeout=10).returncode
                == 0
            ):
                return
            time.sleep(0.05)
        raise RuntimeError("pulseaudio did not start within 10 s")

    def stop(self) -> None:
        """Readers first, then the server; each by its own PID."""
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:] != ["check"]:
        sys.exit(__doc__)
    why = available()
    if why is None:
        with PulseLoopback() as pulse:
            print(pulse.pactl("list", "short", "sinks").strip())
    print(why or "pulseaudio: ok", file=sys.stderr)
    sys.exit(1 if why else 0)
