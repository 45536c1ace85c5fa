"""Running `gameday` as a user does (a subprocess), and reading what it left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the repository (the tests run from a checkout)


@dataclass
class RunResult:
    code: int
    stdout: str
    stderr: str
    report_dir: Path

    def summary(self) -> dict[str, Any]:
        runs = sorted(p for p in self.report_dir.iterdir() if (p / "summary.json").exists())
        assert runs, f"no summary.json under {self.report_dir}; stdout: {self.stdout[-2000:]} stderr: {self.stderr[-2000:]}"
        return json.loads((runs[-1] / "summary.json").read_text())

    def rows(self) -> list[dict[str, Any]]:
        return self.summary()["rows"]


def gameday(*args: str, report_dir: Path, timeout: float = 600, env: dict[str, str] | None = None) -> RunResult:
    full_env = {**os.environ, "GAMEDAY_QUIET": "1", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "gameday.cli.main", *args], cwd=PROJECT_ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout, check=False)
    return RunResult(proc.returncode, proc.stdout, proc.stderr, report_dir)


def popen_gameday(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full_env = {**os.environ, "GAMEDAY_QUIET": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "gameday.cli.main", *args], cwd=PROJECT_ROOT, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def ensure_stopped(proc: subprocess.Popen[str]) -> None:
    """Every process a test starts, it stops: kill the run's whole group if it is still there."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
