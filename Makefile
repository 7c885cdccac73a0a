# The two commands in README.md: `make demo` (clean the example with the shipped model)
# and `make test`. Each sets itself up on a fresh Debian machine with Python 3.11.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! ldconfig -p | grep -q libportaudio; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libportaudio2 >/dev/null; fi
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[train,live,test]'
	touch $@

demo: $(STAMP)
	@mkdir -p out
	$(VENV)/bin/streamae denoise examples/noisy_speech.flac -o out/noisy_speech.clean.flac --overwrite

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf out .pytest_cache
