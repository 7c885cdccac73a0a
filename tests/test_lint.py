"""ruff (pyproject.toml: pyflakes, pycodestyle, import order, 110 columns) passes on the whole tree."""
from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO


def test_ruff_finds_nothing():
    pytest.importorskip("ruff", reason="ruff comes with the test extra: pip install -e '.[test]'")
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
