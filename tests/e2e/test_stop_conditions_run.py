"""Stop conditions in a real run: an alarm set to ALARM, or a stop file, while the fault is in
place restores it within one poll and ends the scenario `stopped` (exit 4); the fault's time cap
restores it whatever the scenario is doing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from gameday.localcloud.process.launcher import LocalCloud
from tests.support.run_helpers import RunResult, ensure_stopped, popen_gameday

FAILED = "eu-west-1"
ALARM = "api-5xx"
MARGIN_S = 0.5   # the watch's poll plus one DescribeAlarms and one restore on a loaded 2-core machine


@pytest.fixture(scope="module")
def cloud(module_cloud: LocalCloud) -> LocalCloud:
    return module_cloud


def described(cloud: LocalCloud, tmp_path: Path, guardrails: dict[str, Any]) -> Path:
    data = yaml.safe_load(Path(cloud.deployment_path).read_text())
    data["guardrails"] = guardrails
    path = tmp_path / "deployment.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def health_changes(cloud: LocalCloud, since: int) -> list[dict[str, Any]]:
    return [e for e in cloud.events(since=since, kind="lambda_config")
            if e["region"] == FAILED and "status" in e["keys_changed"]]


def last_seq(cloud: LocalCloud) -> int:
    events = cloud.events()
    return events[-1]["seq"] if events else 0


def run_until_injected(cloud: LocalCloud, description: Path, report_dir: Path, since: int) -> Any:
    proc = popen_gameday("run", "--deployment", str(description), "-k", "region_failover", "--fail-region", FAILED,
                         "--report-dir", str(report_dir), "--no-html")
    deadline = time.monotonic() + 120
    while not health_changes(cloud, since) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert health_changes(cloud, since), proc.communicate(timeout=60) if proc.poll() is not None else "no fault"
    return proc


def finished(proc: Any, report_dir: Path) -> RunResult:
    out, err = proc.communicate(timeout=300)
    return RunResult(proc.returncode, out, err, report_dir)


def test_an_alarm_going_to_alarm_mid_fault_restores_within_one_poll(cloud: LocalCloud, tmp_path: Path) -> None:
    account = "123456789012"
    watcher = boto3.client("cloudwatch", region_name=FAILED, endpoint_url=cloud.aws_endpoint_url,
                           aws_access_key_id="gameday-local", aws_secret_access_key="gameday-local")
    watcher.put_metric_alarm(AlarmName=ALARM, MetricName="5XXError", Namespace="AWS/ApiGateway", Statistic="Sum",
                             Period=60, EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")
    description = described(cloud, tmp_path, {"stop_conditions": {
        "alarms": [f"arn:aws:cloudwatch:{FAILED}:{account}:alarm:{ALARM}"]}})
    since = last_seq(cloud)
    proc = run_until_injected(cloud, description, tmp_path / "r", since)
    try:
        set_at = time.time()
        watcher.set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason="5xx over threshold")
        result = finished(proc, tmp_path / "r")
    finally:
        ensure_stopped(proc)
        watcher.set_alarm_state(AlarmName=ALARM, StateValue="OK", StateReason="test over")
    assert result.code == 4, result.stdout[-3000:] + result.stderr[-2000:]
    (row,) = result.rows()
    assert row["failure_category"] == "stopped", row.get("error")
    assert ALARM in row["error"] and "5xx over threshold" in row["error"]
    injected, restored = health_changes(cloud, since)[:2]
    assert restored["t"] - set_at <= row["metrics"].get("poll_s", 0.1) + MARGIN_S, (restored["t"] - set_at)
    assert [e["kind"] for e in row["events"]].count("stopped") == 1
    assert "stop condition alarm tripped at" in row["error"]


def test_a_stop_file_restores_and_stops(cloud: LocalCloud, tmp_path: Path) -> None:
    stop_file = tmp_path / "STOP"
    description = described(cloud, tmp_path, {"stop_conditions": {"stop_file": str(stop_file)}})
    since = last_seq(cloud)
    proc = run_until_injected(cloud, description, tmp_path / "r", since)
    try:
        stop_file.touch()
        result = finished(proc, tmp_path / "r")
    finally:
        ensure_stopped(proc)
    assert result.code == 4, result.stdout[-3000:] + result.stderr[-2000:]
    (row,) = result.rows()
    assert row["failure_category"] == "stopped" and str(stop_file) in row["error"]
    assert len(health_changes(cloud, since)) == 2          # injected, then restored: nothing left faulted


def test_the_fault_time_cap_restores_whatever_the_scenario_is_doing(cloud: LocalCloud, tmp_path: Path) -> None:
    # 5 AWS-s cap: far below the ~30 s detection, so the cap trips while the scenario waits for Route 53
    description = described(cloud, tmp_path, {"max_fault_s": 5})
    since = last_seq(cloud)
    proc = run_until_injected(cloud, description, tmp_path / "r", since)
    try:
        result = finished(proc, tmp_path / "r")
    finally:
        ensure_stopped(proc)
    assert result.code == 4, result.stdout[-3000:] + result.stderr[-2000:]
    (row,) = result.rows()
    assert row["failure_category"] == "stopped" and "max_fault_s" in row["error"], row.get("error")
    injected, restored = health_changes(cloud, since)[:2]
    assert restored["t"] - injected["t"] < 5 * 0.01 + MARGIN_S + 1.0   # the cap, not the scenario's own restore
