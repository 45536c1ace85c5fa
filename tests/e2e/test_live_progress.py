"""The progress of `gameday run` as a person (a terminal) and a log (a file, a CI job) see it: live
lines in a real tmux pane, one plain line per phase change in a file, GitHub Actions groups, and the
xdist workers' progress shown by the controller alone."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.support.run_helpers import PROJECT_ROOT

PHASE_LINE = re.compile(r"^(?P<label>\S+ \[[^\]]+\]) \| (?P<phase>[^|]+?) \| (?P<rest>.*)$")
FINISHED = re.compile(r"^(?P<label>\S+ \[[^\]]+\]) \| (?P<verdict>pass|fail)\b.* in \d+\.\d s$")
PHASES = ("steady state", "detect", "DNS shift", "recover")


def progress_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GAMEDAY_QUIET", "GITHUB_ACTIONS")}
    return {**env, **extra}


def run_to_file(tmp_path: Path, *args: str, env: dict[str, str]) -> tuple[int, list[str], Path]:
    """`gameday run` with stdout to a file (not a terminal); its lines and its run folder."""
    out = tmp_path / "stdout.txt"
    with out.open("w") as stdout:
        code = subprocess.run([sys.executable, "-m", "gameday.cli.main", "run", *args,
                               "--report-dir", str(tmp_path / "reports"), "--no-html"],
                              cwd=PROJECT_ROOT, env=env, stdout=stdout, stderr=subprocess.PIPE, text=True,
                              timeout=300, check=False).returncode
    (run_dir,) = [p for p in (tmp_path / "reports").iterdir() if p.is_dir()]
    return code, out.read_text().splitlines(), run_dir


def test_a_log_gets_one_line_per_phase_change_and_one_row_per_scenario(tmp_path: Path) -> None:
    code, lines, _ = run_to_file(tmp_path, "-k", "region_failover", env=progress_env())
    assert code == 0, "\n".join(lines[-60:])
    phase_lines = [m for m in map(PHASE_LINE.match, lines) if m and not FINISHED.match(m.group(0))]
    per_phase = Counter((m["label"], m["phase"]) for m in phase_lines)
    labels = {"region_failover [eu-west-1]", "region_failover [us-east-1]"}
    for label in labels:
        for phase in PHASES:
            assert per_phase[(label, phase)] == 1, (label, phase, lines)
    assert set(per_phase.values()) == {1}, per_phase              # a phase is never repeated per poll
    detect = next(m for m in phase_lines if m["phase"] == "detect")
    assert re.match(r"budget \d+\.\d\d s: Route 53 \S+: \d+/\d+ checkers failing", detect["rest"]), detect.group(0)
    finished = [m for m in map(FINISHED.match, lines) if m]
    assert sorted(m["label"] for m in finished) == sorted(labels) and {m["verdict"] for m in finished} == {"pass"}
    assert not any("\x1b[" in line for line in lines)             # no terminal codes in a log
    assert any(line.startswith("scenario ") for line in lines)     # the summary table, as before


def test_parallel_workers_reach_the_controllers_log_in_github_groups(tmp_path: Path) -> None:
    code, lines, run_dir = run_to_file(tmp_path, "-n", "2", "-k", "region_failover",
                                       env=progress_env(GITHUB_ACTIONS="true"))
    assert code == 0, "\n".join(lines[-60:])
    # Each worker wrote its events to its own file; both workers ran a scenario.
    by_worker = {}
    for path in sorted((run_dir / "progress").glob("*.jsonl")):
        events = [json.loads(line) for line in path.read_text().splitlines()]
        by_worker[path.name.split("-")[0]] = {e["label"] for e in events if e["kind"] == "phase"}
    assert set(by_worker) == {"gw0", "gw1"} and all(by_worker.values()), by_worker
    # Every scenario of both workers is in the controller's output, in one group of its own.
    groups: list[tuple[str, list[str]]] = []
    open_group = None
    for line in lines:
        if line.startswith("::group::"):
            assert open_group is None, f"groups interleave: {line}"
            open_group = (line.removeprefix("::group::"), [])
        elif line == "::endgroup::":
            assert open_group is not None
            groups.append(open_group)
            open_group = None
        elif open_group is not None:
            open_group[1].append(line)
    assert open_group is None
    titles = [title for title, _ in groups]
    assert sorted(titles) == sorted(set().union(*by_worker.values())) and len(titles) == 2, titles
    for title, body in groups:
        assert body and all(line.startswith(f"{title} | ") for line in body), (title, body)
        assert FINISHED.match(body[-1]), body                          # the group ends with its verdict
        per_phase = Counter(PHASE_LINE.match(line)["phase"] for line in body[:-1])  # type: ignore[index]
        assert per_phase and set(per_phase.values()) == {1}, (title, body)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (./setup.sh --test installs it)")
def test_a_terminal_gets_one_live_line_per_running_scenario(tmp_path: Path) -> None:
    tmux = ["tmux", "-u", "-S", str(tmp_path / "tmux.sock")]   # a private server, its socket gone with tmp_path
    done = tmp_path / "exit-code"
    command = (f"{sys.executable} -m gameday.cli.main run -k region_failover --report-dir {tmp_path / 'reports'} "
               f"--no-html; echo $? > {done}; sleep 600")
    env = progress_env()
    subprocess.run([*tmux, "-f", "/dev/null", "new-session", "-d", "-x", "150", "-y", "40", "-c", str(PROJECT_ROOT),
                    "sh", "-c", command], env=env, check=True, timeout=30)
    captures: list[str] = []
    try:
        deadline = time.monotonic() + 240
        while not done.exists() and time.monotonic() < deadline:
            captures.append(subprocess.run([*tmux, "capture-pane", "-p"], capture_output=True, text=True,
                                           check=True, timeout=30).stdout)
            time.sleep(0.1)
        assert done.exists(), captures[-1]
        final = subprocess.run([*tmux, "capture-pane", "-p", "-e", "-S", "-"], capture_output=True, text=True,
                               check=True, timeout=30).stdout
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, check=False, timeout=30)
    assert done.read_text().strip() == "0", final

    phases = "|".join(PHASES)
    waiting_row = re.compile(rf"^region_failover \[[a-z0-9-]+\] ({phases}) .*━.* \d+\.\d\d/\d+\.\d\d s budget$")
    waiting = []
    for screen in captures:
        running = [line for line in screen.splitlines() if line.startswith("region_failover [")]
        assert len(running) <= 1, screen                              # one scenario runs at a time here
        waiting += [m for m in map(waiting_row.match, running) if m]
    assert {m[1] for m in waiting} >= {"steady state", "detect"}, captures
    assert not any(" | " in line for screen in captures for line in screen.splitlines()), captures[-1]
    plain_final = re.sub(r"\x1b\[[0-9;]*m", "", final)
    for region in ("eu-west-1", "us-east-1"):
        rows = [line for line in plain_final.splitlines() if re.match(rf"✔ pass +region_failover \[{region}\]", line)]
        assert len(rows) == 1, plain_final                           # collapsed into one row
    green = "\x1b[32m"
    row = next(line for line in final.splitlines() if "✔ pass" in line)
    assert green in row[:row.index("✔")], row                      # coloured by verdict
    summary = next(line for line in final.splitlines() if re.search(r"region_failover +eu-west-1 +us-east-1", line))
    assert green in summary[:summary.index("region_failover")], summary   # and so is the summary
