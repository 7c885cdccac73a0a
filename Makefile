# The two commands in README.md: `make demo` (clean the example with the shipped model)
# and `make test`. Each sets itself up on a fresh Debian machine with Python 3.11.
# The demo needs the runtime alone (numpy, onnxruntime, soundfile, soxr); the tests also
# install live audio, training (torch, CPU build), Ray (the --ray tests) and the test tools (pytest, ruff).
VENV ?= .venv
PY := $(VENV)/bin/python
RUNTIME := $(VENV)/.runtime
STAMP := $(VENV)/.installed

# Live audio needs PortAudio; the microphone test (tests/test_live_pulse.py) needs a PulseAudio
# server and ALSA's pulse plugin, so CI can prove the path without sound hardware.
SYSTEM_PACKAGES := libportaudio2 libasound2-plugins pulseaudio pulseaudio-utils

.PHONY: setup system demo test clean

setup: $(STAMP)

# Installs only what is missing, only as root with apt-get; otherwise says what is missing.
system:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing system packages:" $$missing; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else echo "note: live audio and its tests need:" $$missing "(apt-get install)"; fi; \
	fi

$(RUNTIME): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(STAMP): $(RUNTIME) | system
	$(PY) -m pip install -q -e '.[train,live,test,cluster]'
	touch $@

demo: $(RUNTIME)
	@mkdir -p out
	$(VENV)/bin/streamae denoise examples/noisy_speech.flac -o out/noisy_speech.clean.flac --overwrite

# ruff first (seconds), then the suite (which runs it again, in tests/test_lint.py)
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q

clean:
	rm -rf out .pytest_cache
