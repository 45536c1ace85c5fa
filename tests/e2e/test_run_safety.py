"""A shared deployment, as a team schedules game days against it: one run at a time (the lease),
and nothing outside the description's guardrails. Through `gameday run` as a user runs it."""

from __future__ import annotations

import datetime as dt
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from gameday.localcloud.process.launcher import LocalCloud
from tests.support.run_helpers import ensure_stopped, gameday, popen_gameday

FAILED = "eu-west-1"


@pytest.fixture(scope="module")
def shared(module_cloud: LocalCloud) -> LocalCloud:
    return module_cloud


def described(cloud: LocalCloud, tmp_path: Path, **extra: Any) -> Path:
    data = yaml.safe_load(Path(cloud.deployment_path).read_text())
    data.update(extra)
    path = tmp_path / "deployment.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_args(description: Path, report_dir: Path, *more: str) -> list[str]:
    return ["run", "--deployment", str(description), "-k", "region_failover", "--fail-region", FAILED,
            "--report-dir", str(report_dir), "--no-html", *more]


def config_changes(cloud: LocalCloud, since: int) -> list[dict[str, Any]]:
    return [e for e in cloud.events(since=since, kind="lambda_config")]


def last_seq(cloud: LocalCloud) -> int:
    events = cloud.events()
    return events[-1]["seq"] if events else 0


def test_the_reference_deployment_names_its_lease_table(shared: LocalCloud) -> None:
    lease = yaml.safe_load(Path(shared.deployment_path).read_text())["lease"]
    assert lease["table"] == "gameday-leases" and lease["region"] == "eu-west-1"


def test_a_second_run_is_refused_naming_the_holder_then_waits_its_turn(shared: LocalCloud, tmp_path: Path) -> None:
    description = described(shared, tmp_path)
    first = popen_gameday(*run_args(description, tmp_path / "first"))
    try:
        line = ""
        deadline = time.monotonic() + 120
        while "holds the lease" not in line and time.monotonic() < deadline:
            line = first.stdout.readline() if first.stdout else ""
            if not line and first.poll() is not None:
                break
        assert "holds the lease" in line, (line, first.stderr.read() if first.poll() is not None else "")
        holder_run = line.split()[2].rstrip(":")
        refused = gameday(*run_args(description, tmp_path / "refused"), report_dir=tmp_path / "refused")
        assert refused.code == 3, refused.stdout[-2000:] + refused.stderr[-2000:]
        message = refused.stderr.strip().splitlines()[-1]
        assert message.startswith("gameday: lease: ") and holder_run in message and "--wait-lock" in message
        assert not (tmp_path / "refused").exists() or not any((tmp_path / "refused").iterdir())

        waited = gameday(*run_args(description, tmp_path / "second", "--wait-lock", "300"),
                         report_dir=tmp_path / "second")
        out, err = first.communicate(timeout=300)
        assert first.returncode == 0, out[-3000:] + err[-2000:]
        assert waited.code == 0, waited.stdout[-3000:] + waited.stderr[-2000:]
    finally:
        ensure_stopped(first)
    (a,) = [r for p in (tmp_path / "first").iterdir() for r in _rows(p)]
    (b,) = waited.rows()
    # the faults never overlap: the waiting run injected only after the first one recovered
    assert b["marks"]["fault"] > a["marks"]["recovered"], (a["marks"], b["marks"])


def _rows(run_dir: Path) -> list[dict[str, Any]]:
    import json

    summary = run_dir / "summary.json"
    return json.loads(summary.read_text())["rows"] if summary.is_file() else []


def test_a_killed_holder_is_unlocked_with_force_and_the_next_run_proceeds(shared: LocalCloud, tmp_path: Path) -> None:
    description = described(shared, tmp_path)
    holder = popen_gameday(*run_args(description, tmp_path / "killed"))
    try:
        deadline = time.monotonic() + 120
        line = ""
        while "holds the lease" not in line and time.monotonic() < deadline and holder.poll() is None:
            line = holder.stdout.readline() if holder.stdout else ""
        assert "holds the lease" in line
        import os

        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        ensure_stopped(holder)
    # whatever the killed run left injected, restore puts back; then its lease is removed by hand
    gameday("restore", "--deployment", str(description), "--journal", str(tmp_path / "killed" / "journal.jsonl"),
            report_dir=tmp_path)
    refused = gameday("unlock", "--deployment", str(description), report_dir=tmp_path)
    assert refused.code == 2 and "--force" in refused.stderr
    unlocked = gameday("unlock", "--deployment", str(description), "--force", report_dir=tmp_path)
    assert unlocked.code == 0 and "removed the lease of run" in unlocked.stdout, unlocked.stderr
    after = gameday(*run_args(description, tmp_path / "after"), report_dir=tmp_path / "after")
    assert after.code == 0, after.stdout[-3000:] + after.stderr[-2000:]


@pytest.mark.parametrize(("guardrails", "guardrail"), [
    ({"allowed_regions": ["us-east-1"]}, "allowed_regions"),
    ({"allowed_functions": ["someone-elses-*"]}, "allowed_functions"),
    ({"account_id": "999999999999"}, "account_id"),
])
def test_a_target_outside_the_guardrails_is_refused_before_any_change(shared: LocalCloud, tmp_path: Path,
                                                                      guardrails: dict, guardrail: str) -> None:
    description = described(shared, tmp_path, guardrails=guardrails)
    since = last_seq(shared)
    refused = gameday(*run_args(description, tmp_path / "r"), report_dir=tmp_path / "r")
    assert refused.code == 3, refused.stdout[-2000:] + refused.stderr[-2000:]
    message = refused.stderr.strip().splitlines()[-1]
    assert message.startswith(f"gameday: guardrail {guardrail}: "), message
    assert config_changes(shared, since) == []          # the ground truth: no function was changed


def test_a_run_outside_its_window_is_refused(shared: LocalCloud, tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    closed = {"start": (now + dt.timedelta(hours=2)).strftime("%H:%M"),
              "end": (now + dt.timedelta(hours=3)).strftime("%H:%M")}
    description = described(shared, tmp_path, guardrails={"window": closed})
    refused = gameday(*run_args(description, tmp_path / "r"), report_dir=tmp_path / "r")
    assert refused.code == 3 and "guardrail window: " in refused.stderr, refused.stderr[-2000:]
