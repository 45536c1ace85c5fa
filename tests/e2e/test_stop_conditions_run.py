"""Stop conditions in a real run: an alarm set to ALARM, or a stop file, while the fault is in
place restores it within one poll and ends the scenario `stopped` (exit 4); the fault's time cap
restores it whatever the scenario is doing; the error rate of the game day's own traffic over its
window trips above its max, and a max above what the traffic sees lets the run end as it would."""

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
SCALE = 0.01     # the module cloud's time scale
# the game day's own error rate: judged over 100 AWS-s (1 s here) once 10 requests were seen
ERROR_RATE = {"window_s": 100, "min_requests": 10}
LOAD = ("-k", "failover_under_load", "--load-acked-writes", "300")


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


def run_until_injected(cloud: LocalCloud, description: Path, report_dir: Path, since: int,
                       select: tuple[str, ...] = ("-k", "region_failover")) -> Any:
    proc = popen_gameday("run", "--deployment", str(description), *select, "--fail-region", FAILED,
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


def lambda_client(cloud: LocalCloud) -> Any:
    return boto3.client("lambda", region_name=FAILED, endpoint_url=cloud.aws_endpoint_url,
                        aws_access_key_id="gameday-local", aws_secret_access_key="gameday-local")


def health_env(cloud: LocalCloud) -> dict[str, str]:
    config = lambda_client(cloud).get_function_configuration(FunctionName="gameday-Health")
    return dict((config.get("Environment") or {}).get("Variables") or {})


def test_the_game_days_own_error_rate_above_its_max_restores_at_once(cloud: LocalCloud, tmp_path: Path) -> None:
    # While the Health flip is in place, the region's writes start failing too (its PutItem throttled to 0,
    # as an incident beside the drill would): the traffic's own clients see 5xx and the run must stop.
    before = health_env(cloud)
    description = described(cloud, tmp_path, {"stop_conditions": {"error_rate": {"max": 0.05, **ERROR_RATE}}})
    since = last_seq(cloud)
    proc = run_until_injected(cloud, description, tmp_path / "r", since, LOAD)
    lam = lambda_client(cloud)
    try:
        lam.put_function_concurrency(FunctionName="gameday-PutItem", ReservedConcurrentExecutions=0)
        throttled_at = time.time()
        result = finished(proc, tmp_path / "r")
    finally:
        ensure_stopped(proc)
        lam.delete_function_concurrency(FunctionName="gameday-PutItem")
    assert result.code == 4, result.stdout[-3000:] + result.stderr[-2000:]
    (row,) = result.rows()
    assert row["failure_category"] == "stopped", row.get("error")
    assert "stop condition error_rate tripped at" in row["error"], row["error"]
    assert "of the game day's own requests failed" in row["error"] and "over the last 100 s" in row["error"]
    assert "max 5.0%" in row["error"] and "HTTP 5" in row["error"], row["error"]
    (stopped,) = [e for e in row["events"] if e["kind"] == "stopped"]
    injected, restored = health_changes(cloud, since)[:2]
    poll_s = row["metrics"].get("poll_s", 0.1)
    # failures are most of the requests from the throttle on: the rate passes 5% well within one window
    assert stopped["t"] - throttled_at <= ERROR_RATE["window_s"] * SCALE + poll_s + MARGIN_S
    assert restored["t"] - stopped["t"] <= MARGIN_S                    # restored at once, from the watch
    assert len(health_changes(cloud, since)) == 2
    assert health_env(cloud) == before


def test_an_error_rate_max_above_what_the_traffic_sees_lets_the_run_end_as_usual(cloud: LocalCloud,
                                                                                  tmp_path: Path) -> None:
    before = health_env(cloud)
    description = described(cloud, tmp_path, {"stop_conditions": {"error_rate": {"max": 0.5, **ERROR_RATE}}})
    since = last_seq(cloud)
    proc = run_until_injected(cloud, description, tmp_path / "r", since, LOAD)
    try:
        result = finished(proc, tmp_path / "r")
    finally:
        ensure_stopped(proc)
    assert result.code == 0, result.stdout[-3000:] + result.stderr[-2000:]
    (row,) = result.rows()
    assert row["verdict"] == "pass" and not any(e["kind"] == "stopped" for e in row["events"]), row.get("error")
    (active,) = [p for p in row["evidence"]["fault_journal"] if p["name"] == "active"]
    counted = active["output"]["own_traffic"]
    # the condition was fed and judged: the traffic's requests while the fault was in place, below the max
    assert counted["requests"] >= ERROR_RATE["min_requests"], counted
    assert counted["failed"] <= 0.5 * counted["requests"], counted
    assert counted["window_s"] == ERROR_RATE["window_s"] * SCALE
    assert health_env(cloud) == before
