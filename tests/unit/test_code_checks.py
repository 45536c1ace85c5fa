"""The code stays honest: ruff and mypy, with the configuration in pyproject.toml, find nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600,
                          check=False)


def test_ruff_finds_nothing() -> None:
    found = run("ruff", "check", "--output-format", "concise", ".")
    assert found.returncode == 0, found.stdout[-6000:] + found.stderr[-2000:]


def test_mypy_finds_nothing() -> None:
    found = run("mypy")
    assert found.returncode == 0, found.stdout[-6000:] + found.stderr[-2000:]
