"""A LocalCloud's process dies with the process that started it (process/lifeline.py), even when
that process is SIGKILLed and so never stops it; the exit of the thread that started it is not
taken for its death."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import gameday

psutil = pytest.importorskip("psutil")

START_BUDGET_S = 120.0   # a cold start on a loaded 2-core machine
EXIT_BUDGET_S = 15.0     # lifeline.GRACE_S for the orderly stop, plus detection and slack
PID_PREFIX = "CLOUD-PID "

# The cloud is started from a worker thread that then exits: on Linux that sends the death signal
# (PR_SET_PDEATHSIG follows the parent thread), which the cloud must not take for its parent's death.
PARENT = textwrap.dedent(f"""
    import threading, time
    from gameday.localcloud.process.launcher import LocalCloud

    started = []
    worker = threading.Thread(target=lambda: started.append(LocalCloud().start()))
    worker.start()
    worker.join()
    print({PID_PREFIX!r} + str(started[0].pid), started[0].log_path, flush=True)
    time.sleep(600)
""")


def _alive(pid: int) -> bool:
    """Running; a zombie (exited, not yet reaped by whoever inherited it) counts as gone."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _read_cloud(parent: subprocess.Popen[str]) -> tuple[int, Path]:
    """The cloud's pid and log file, as the parent prints them."""
    assert parent.stdout is not None
    stdout = parent.stdout
    found: list[tuple[int, Path]] = []

    def reader() -> None:
        for line in stdout:
            if line.startswith(PID_PREFIX):
                pid, log = line[len(PID_PREFIX):].split(maxsplit=1)
                found.append((int(pid), Path(log.strip())))
                return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(START_BUDGET_S)
    assert found, f"the parent printed no cloud pid (exit {parent.poll()})"
    return found[0]


@pytest.mark.slow
def test_the_cloud_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(gameday.__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    env["TMPDIR"] = str(tmp_path)  # what a killed parent cannot clean up (its LocalCloud's work dir) stays here
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, env=env,
                              cwd=tmp_path, start_new_session=True)
    cloud_pid: int | None = None
    try:
        cloud_pid, log = _read_cloud(parent)
        assert psutil.Process(cloud_pid).ppid() == parent.pid
        time.sleep(1.0)  # the starting thread is gone: its death signal has come and must have been ignored
        assert "is gone" not in log.read_text(), "the cloud took its starting thread's exit for its parent's death"
        assert _alive(cloud_pid)

        killed_at = time.monotonic()
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        while _alive(cloud_pid) and time.monotonic() - killed_at < EXIT_BUDGET_S:
            time.sleep(0.1)
        assert not _alive(cloud_pid), f"the cloud still runs {EXIT_BUDGET_S} s after its parent was killed"
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
            parent.wait(timeout=10)
        if parent.stdout is not None:
            parent.stdout.close()
        if cloud_pid is not None and _alive(cloud_pid):
            os.killpg(cloud_pid, signal.SIGKILL)
