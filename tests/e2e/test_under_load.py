"""Issue 4 must-holds, end to end on local clouds: failover under load loses nothing and its
measurements agree with the cloud's ground truth; dropped replication shows up as lost writes
listed by id; the rest of the catalog writes its rows; faults restore exactly.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from gameday.deployment import load_deployment
from gameday.faults.concurrency import ThrottleFunction, reserved_concurrency
from gameday.faults.journal import Journal, restore_pending
from gameday.faults.replication import DropReplication, PauseReplication, replication_status
from gameday.localcloud.process.launcher import LocalCloud
from gameday.report.summary import LOAD_FIGURES
from tests.support.run_helpers import ensure_stopped, gameday, popen_gameday

PRIMARY, SECONDARY = "eu-west-1", "us-east-1"
MUST_HOLD_ACKED_WRITES = 5000
# The harness sees a change at the first poll after it. The change came after the previous poll
# was sent (that poll still saw the old state), so the measured time can trail the truth by at
# most: the detecting poll's answer time - the previous poll's send time, i.e. one poll interval
# as realised (wait + round trip, however slow the loaded machine made it) plus the detecting
# poll's own round trip. The margin covers only clock granularity between the two processes.
CLOCK_MARGIN_S = 0.05


def _client(cloud: LocalCloud, service: str, region: str) -> Any:
    return boto3.client(service, region_name=region, endpoint_url=cloud.aws_endpoint_url,
                        aws_access_key_id="gameday-local", aws_secret_access_key="gameday-local")


def _only(rows: list[dict[str, Any]], scenario: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["scenario"] == scenario]


def _assert_agrees_with_truth(row: dict[str, Any]) -> None:
    """Detection and DNS shift agree with the cloud's ground truth within one poll interval (+ the
    detecting poll's round trip): see CLOCK_MARGIN_S."""
    truth, marks, poll_s = row["evidence"]["ground_truth"], row["marks"], row["metrics"]["poll_s"]
    polls = [p["t"] for p in row["evidence"]["health_observations"]]   # answer times; the last one saw it
    # previous poll sent poll_s after the answer before it (sleep overshoot only makes this earlier)
    previous_sent = polls[-3] + poll_s if len(polls) >= 3 else marks["fault"]
    lag = marks["detected"] - truth["unhealthy_at"]
    bound = marks["detected"] - previous_sent + CLOCK_MARGIN_S
    flags = row["evidence"].get("detection_flags") or []
    late_allowance = 0.0
    if lag > bound:
        # Only a wait whose results went unseen (a loaded machine) may read later, and it must say so.
        assert any(word in f for f in flags for word in ("poll gap", "fallen between", "went unseen")), \
            (lag, bound, polls[-3:], flags)
        late_allowance = row["metrics"]["detection_max_poll_gap_s"] * 3
        if any("before the wait's first poll" in f for f in flags):
            # Streaks begun before the first poll: late by up to threshold - 1 results, at the checkers' pace.
            pace = max(row["metrics"].get("checker_pace_s") or 0.0, row["metrics"]["detection_max_poll_gap_s"])
            late_allowance = max(late_allowance, 2 * pace + row["metrics"]["detection_max_poll_gap_s"])
    assert 0 <= lag <= bound + late_allowance, (lag, bound, late_allowance, polls[-3:], flags)
    assert abs(row["detection_s"] - row["metrics"]["truth_detection_s"]) <= bound + late_allowance
    if truth["dns_shift_at"] is not None:  # failing the secondary changes no answer
        dns_polls = [p["t"] for p in row["evidence"]["dns_answers"]]
        lag = marks["dns_shift"] - truth["dns_shift_at"]
        if len(dns_polls) >= 2:
            # The poll before the shifting one still saw the old answer.
            bound = marks["dns_shift"] - (dns_polls[-2] + poll_s) + CLOCK_MARGIN_S
        else:
            # The first DNS poll already saw the shift, so the answer changed before the DNS wait: no
            # earlier than the status (answers follow health), which the detection pinned to its own
            # precision. The DNS moment claims that precision, no more.
            bound = marks["dns_shift"] - previous_sent + CLOCK_MARGIN_S + late_allowance
        assert 0 <= lag <= bound, (lag, bound, dns_polls[-3:], flags)


def _assert_load_row(row: dict[str, Any]) -> None:
    for key in LOAD_FIGURES:
        assert key in row, key
    for key in ("acked_writes", "rpo_lost_writes", "client_outage_s", "errors", "replication_lag_p50_s",
                "replication_lag_p99_s", "failback_s"):
        assert row[key] is not None, (key, row["metrics"])


def test_failover_under_load_with_5000_acked_writes_loses_none(tmp_path: Path) -> None:
    result = gameday("run", "-k", "failover_under_load", "--fail-region", PRIMARY, "--report-dir", str(tmp_path),
                     "--no-html", report_dir=tmp_path,
                     env={"GAMEDAY_LOAD_ACKED_WRITES": str(MUST_HOLD_ACKED_WRITES)})
    assert result.code == 0, result.stdout[-4000:] + result.stderr[-2000:]
    (row,) = result.rows()
    assert row["scenario"] == "failover_under_load" and row["verdict"] == "pass", row.get("error")
    _assert_load_row(row)
    assert row["acked_writes"] >= MUST_HOLD_ACKED_WRITES
    assert row["rpo_lost_writes"] == 0 and row["metrics"]["rpo_missing_ids"] == []
    _assert_agrees_with_truth(row)
    # Failback: the traffic moved to the survivor and came back to the primary after recovery.
    acked_by = row["metrics"]["acked_by_region"]
    assert acked_by.get(SECONDARY, 0) > 0 and acked_by.get(PRIMARY, 0) > 0, acked_by
    after = row["evidence"]["served_after_recovery"]
    assert after["by_region"].get(PRIMARY, 0) > 0, after
    # Requests elsewhere after recovery happen only when Route 53 answered elsewhere again (reported).
    assert not after["unexplained"] or any("DNS watch" in f for f in row["findings"]), after
    assert row["metrics"]["replication_lag_samples"] > 0
    assert any(p.endswith("-timeline.png") for p in row["charts"])


@pytest.fixture
def dropped_cloud() -> Iterator[LocalCloud]:
    with LocalCloud() as cloud:
        cloud.control("/replication/drop", {"region": SECONDARY})
        yield cloud


def test_dropped_replication_is_reported_as_lost_writes_with_their_ids(dropped_cloud: LocalCloud,
                                                                       tmp_path: Path) -> None:
    result = gameday("run", "--deployment", str(dropped_cloud.deployment_path), "-k", "failover_under_load",
                     "--fail-region", PRIMARY, "--report-dir", str(tmp_path), "--no-html", report_dir=tmp_path,
                     env={"GAMEDAY_LOAD_ACKED_WRITES": "300"})
    assert result.code != 0
    (row,) = result.rows()
    assert row["verdict"] == "fail" and row["failure_category"] == "lost_writes", row.get("error")
    assert "[lost_writes]" in result.stdout
    _assert_load_row(row)
    missing = row["metrics"]["rpo_missing_ids"]
    assert row["rpo_lost_writes"] > 0 and len(missing) == row["rpo_lost_writes"]
    # Every write the primary acknowledged never reached the secondary; nothing else is missing.
    assert row["metrics"]["rpo_missing_by_region"] == {SECONDARY: row["rpo_lost_writes"]}
    assert row["rpo_lost_writes"] == row["metrics"]["acked_by_region"][PRIMARY]
    # Checked independently of the harness: the listed ids are in the primary's table, not the secondary's.
    table = load_deployment(dropped_cloud.deployment_path).table.name
    for item_id in missing[:5]:
        key = {"id": {"N": str(item_id)}}
        assert "Item" in _client(dropped_cloud, "dynamodb", PRIMARY).get_item(TableName=table, Key=key,
                                                                              ConsistentRead=True)
        assert "Item" not in _client(dropped_cloud, "dynamodb", SECONDARY).get_item(TableName=table, Key=key,
                                                                                     ConsistentRead=True)
    assert str(missing[0]) in row["error"]


def test_catalog_scenarios_write_rows_and_findings(tmp_path: Path) -> None:
    result = gameday("run", "-k", "replication_pause or blind_spot or all_regions_down or latency_routing",
                     "--report-dir", str(tmp_path), "--no-html", report_dir=tmp_path)
    assert result.code == 0, result.stdout[-4000:] + result.stderr[-2000:]
    rows = result.rows()
    assert sorted(r["scenario"] for r in rows) == ["all_regions_down_failover", "all_regions_down_latency",
                                                   "blind_spot", "blind_spot", "latency_routing", "latency_routing",
                                                   "replication_pause", "replication_pause"]
    for row in rows:
        assert row["verdict"] == "pass", row.get("error")
        for key in LOAD_FIGURES:
            assert key in row, (row["scenario"], key)

    pauses = _only(rows, "replication_pause")
    assert sorted(p["failed_region"] for p in pauses) == [PRIMARY, SECONDARY]
    for pause in pauses:
        assert pause["metrics"]["conflicts"] == 50 and pause["rpo_lost_writes"] == 0
        assert pause["metrics"]["overwritten_by_lww"] == 50 and pause["metrics"]["diverged_after_resume"] == 0

    # the default deep /health sees the region's writes fail: the primary's, which carries the
    # traffic, and the standby's, which a failover would send it to
    blinds = {b["failed_region"]: b for b in _only(rows, "blind_spot")}
    assert sorted(blinds) == [PRIMARY, SECONDARY]
    for blind in blinds.values():
        assert blind["metrics"]["blind_spot"] is False
        assert blind["metrics"]["max_failing_checkers"] > 0
        assert blind["findings"] and blind["findings"][0].startswith("no blind spot")
    served = blinds[PRIMARY]["metrics"]
    assert served["standby"] is False and served["failed_writes_to_region"] == served["writes_to_region"] > 0
    standby = blinds[SECONDARY]["metrics"]
    assert standby["standby"] is True and standby["writes_to_region"] == 0
    assert blinds[SECONDARY]["dns_shift_s"] is None and blinds[SECONDARY]["detection_s"] > 0   # never answered
    assert "the standby" in blinds[SECONDARY]["findings"][0]
    run_dir = next(p for p in tmp_path.iterdir() if (p / "summary.md").exists())
    markdown = (run_dir / "summary.md").read_text()
    assert "## Findings" in markdown and "no blind spot" in markdown
    assert "finding: blind_spot" in result.stdout

    (down_failover,) = _only(rows, "all_regions_down_failover")
    assert down_failover["metrics"]["fail_open_regions"] == [PRIMARY]
    (down_latency,) = _only(rows, "all_regions_down_latency")
    assert down_latency["metrics"]["fail_open_regions"] == [PRIMARY, SECONDARY]

    latency = _only(rows, "latency_routing")
    assert sorted(r["failed_region"] for r in latency) == [PRIMARY, SECONDARY]
    for row in latency:
        assert row["survivor"] not in (None, row["failed_region"])
        assert row["failback_s"] is not None
        for client, seen in row["evidence"]["steady_state"].items():
            assert seen["served_by"] == client
        assert row["evidence"]["during"][row["failed_region"]]["served_by"] == row["survivor"]

    # Every fault of the run was journalled and restored.
    entries = Journal(tmp_path / "journal.jsonl").entries()
    faults = {e["fault"] for e in entries}
    assert {"flip_health", "replication_pause", "write_impairment"} <= faults
    assert all(e["state"] == "restored" for e in entries), [e for e in entries if e["state"] != "restored"]


# -- the faults themselves, against one local cloud ------------------------------------------------
@pytest.fixture(scope="module")
def fault_cloud() -> Iterator[LocalCloud]:
    with LocalCloud() as cloud:
        yield cloud


def test_throttle_restores_exactly_none_or_a_previous_value(fault_cloud: LocalCloud, tmp_path: Path) -> None:
    dep = load_deployment(fault_cloud.deployment_path)
    lam = _client(fault_cloud, "lambda", PRIMARY)
    journal = Journal(tmp_path / "journal.jsonl")
    fn = dep.region(PRIMARY).functions.put
    assert reserved_concurrency(lam, fn) == {"present": False, "value": None}
    with pytest.raises(RuntimeError):
        with ThrottleFunction(dep, PRIMARY, journal=journal) as fault:
            assert reserved_concurrency(lam, fn) == {"present": True, "value": 0}
            assert fault.verified["answered"] >= 500
            raise RuntimeError("the scenario failed")
    assert reserved_concurrency(lam, fn) == {"present": False, "value": None}

    lam.put_function_concurrency(FunctionName=fn, ReservedConcurrentExecutions=7)
    try:
        with ThrottleFunction(dep, PRIMARY, journal=journal):
            with pytest.raises(Exception, match="already injected"):
                ThrottleFunction(dep, PRIMARY, journal=journal).__enter__()  # refused, nothing changed
        assert reserved_concurrency(lam, fn) == {"present": True, "value": 7}
    finally:
        lam.delete_function_concurrency(FunctionName=fn)
    assert all(e["state"] == "restored" for e in journal.entries())


def test_replication_faults_restore_and_gameday_restore_repairs_a_killed_run(fault_cloud: LocalCloud,
                                                                              tmp_path: Path) -> None:
    dep = load_deployment(fault_cloud.deployment_path)
    journal = Journal(tmp_path / "journal.jsonl")
    with PauseReplication(dep, PRIMARY, journal=journal):
        assert replication_status(dep.control_url)["paused"] == [PRIMARY]
    with DropReplication(dep, SECONDARY, journal=journal):
        assert replication_status(dep.control_url)["dropped"] == [SECONDARY]
    status = replication_status(dep.control_url)
    assert status["paused"] == [] and status["dropped"] == []

    # A run killed mid-fault leaves the journal entry; `gameday restore` undoes it.
    fault = PauseReplication(dep, SECONDARY, journal=journal)
    fault.__enter__()  # never exited: as if killed
    assert replication_status(dep.control_url)["paused"] == [SECONDARY]
    outcomes = restore_pending(journal, dep)
    assert [o.ok for o in outcomes] == [True] and "resumed" in outcomes[0].detail
    assert replication_status(dep.control_url)["paused"] == []
    assert restore_pending(journal, dep) == []


def test_sigterm_during_a_pause_restores_replication(fault_cloud: LocalCloud, tmp_path: Path) -> None:
    described = yaml.safe_load(Path(fault_cloud.deployment_path).read_text())
    assert described["target"] == "local"
    control_url = described["control_url"]
    proc = popen_gameday("run", "--deployment", str(fault_cloud.deployment_path), "-k", "replication_pause",
                         "--report-dir", str(tmp_path), "--no-html")
    try:
        from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

        Retrying(stop=stop_after_delay(120), wait=wait_fixed(0.02), reraise=True,
                 retry=retry_if_result(lambda paused: not paused))(lambda: replication_status(control_url)["paused"])
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=120)
    finally:
        ensure_stopped(proc)
    assert proc.returncode != 0
    assert replication_status(control_url)["paused"] == []
