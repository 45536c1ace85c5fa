"""A region outage, end to end on local clouds: every function of the region is throttled and put
back exactly; under load the client outage splits into detection, routing change and client cache,
agrees with the cloud's ground truth and the records' TTL, and records with a TTL of 3,600 s fail a
300 s client-outage SLO with a message that names the TTL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from gameday.deployment import load_deployment
from gameday.faults.journal import Journal
from gameday.faults.marks import TAG
from gameday.faults.region_outage import RegionOutage
from gameday.localcloud.process.launcher import LocalCloud
from gameday.observe.pinned_http import PinnedClient
from tests.support.run_helpers import gameday

PRIMARY, SECONDARY = "eu-west-1", "us-east-1"
TIME_SCALE = 0.01                 # the local clouds' default
CLOCK_MARGIN_S = 0.05             # clock granularity between the cloud's process and the harness's


def _lambda(cloud: LocalCloud, region: str) -> Any:
    return boto3.client("lambda", region_name=region, endpoint_url=cloud.aws_endpoint_url,
                        aws_access_key_id="gameday-local", aws_secret_access_key="gameday-local")


def _status(dep: Any, region: str, method: str, path: str, body: Any = None) -> int:
    client = PinnedClient.for_region(dep, region, timeout=(3.05, 10.0))
    try:
        return client.request(method, path, json=body).status
    finally:
        client.close()


def test_every_function_of_the_region_is_throttled_then_put_back_exactly(module_cloud: LocalCloud,
                                                                         tmp_path: Path) -> None:
    dep = load_deployment(module_cloud.deployment_path)
    lam = _lambda(module_cloud, PRIMARY)
    functions = dep.region(PRIMARY).functions
    names = (functions.put, functions.get, functions.health)
    lam.put_function_concurrency(FunctionName=functions.get, ReservedConcurrentExecutions=5)  # N comes back as N
    try:
        with RegionOutage(dep, PRIMARY, journal=Journal(tmp_path / "journal.jsonl")) as fault:
            for name in names:
                answer = lam.get_function(FunctionName=name)
                assert answer.get("Concurrency") == {"ReservedConcurrentExecutions": 0}, name
                assert answer["Tags"].get(TAG), name       # each function carries the run's mark
            assert fault.verified["health"]["answered"] >= 500 and fault.verified["put"]["answered"] >= 500
            assert _status(dep, PRIMARY, "GET", "/item/1") >= 500        # reads fail too
            assert _status(dep, SECONDARY, "GET", "/health") == 200      # the other region serves
        for name in (functions.put, functions.health):
            assert "Concurrency" not in lam.get_function(FunctionName=name), name   # none before: none after
        assert lam.get_function(FunctionName=functions.get)["Concurrency"] == {"ReservedConcurrentExecutions": 5}
        for name in names:
            assert TAG not in (lam.get_function(FunctionName=name).get("Tags") or {}), name
        assert _status(dep, PRIMARY, "GET", "/health") == 200
    finally:
        lam.delete_function_concurrency(FunctionName=functions.get)


def test_region_outage_under_load_splits_the_client_outage_and_agrees_with_the_ttl(tmp_path: Path) -> None:
    result = gameday("run", "-k", "region_outage", "--fail-region", PRIMARY, "--report-dir", str(tmp_path),
                     "--no-html", report_dir=tmp_path, env={"GAMEDAY_LOAD_ACKED_WRITES": "300"})
    assert result.code == 0, result.stdout[-4000:] + result.stderr[-2000:]
    (row,) = result.rows()
    assert row["scenario"] == "region_outage_under_load" and row["verdict"] == "pass", row.get("error")
    metrics, marks, truth = row["metrics"], row["marks"], row["evidence"]["ground_truth"]
    assert row["rpo_lost_writes"] == 0
    # Clients really failed (every request to the region does), and those failures are counted.
    assert row["errors"] > 0 and row["client_outage_s"] > 0 and metrics["failed_requests"] >= row["errors"]
    parts = (metrics["outage_detection_s"], metrics["outage_routing_s"], metrics["outage_client_cache_s"])
    assert all(part >= 0 for part in parts) and abs(sum(parts) - row["client_outage_s"]) <= 0.001, parts
    # Against the cloud's ground truth: clients fail until DNS really moved, and their last failing
    # request starts within one TTL of it (the cache) plus one poll.
    ttl_s, poll_s = 60 * TIME_SCALE, metrics["poll_s"]
    split = row["evidence"]["client_outage_split"]
    last_failed = split["last_failed_request"]["t_start"]
    assert split["last_failed_request"]["t_end"] <= metrics["outage_end"]
    assert metrics["outage_end"] >= truth["dns_shift_at"] - poll_s - CLOCK_MARGIN_S, (metrics["outage_end"], truth)
    assert last_failed <= truth["dns_shift_at"] + ttl_s + poll_s + CLOCK_MARGIN_S, (last_failed, truth)
    assert metrics["outage_start"] >= marks["fault"] - CLOCK_MARGIN_S
    assert split["within_ttl"] and split["record_ttl_s"] == 60, split
    # The outage is put back exactly: every entry restored.
    entries = Journal(tmp_path / "journal.jsonl").entries()
    assert [e["fault"] for e in entries if e["state"] == "restored"] == ["region_outage"]


@pytest.fixture
def long_ttl_cloud() -> Any:
    with LocalCloud(extra_args=["--records", "cname", "--ttl", "3600"]) as cloud:
        yield cloud


def test_records_with_a_ttl_of_3600_s_fail_a_300_s_client_outage_slo_naming_the_ttl(long_ttl_cloud: LocalCloud,
                                                                                   tmp_path: Path) -> None:
    result = gameday("run", "--deployment", str(long_ttl_cloud.deployment_path), "-k", "region_outage",
                     "--fail-region", PRIMARY, "--slo", "client_outage_s=300", "--report-dir", str(tmp_path),
                     "--no-html", report_dir=tmp_path, env={"GAMEDAY_LOAD_ACKED_WRITES": "200"})
    assert result.code == 1, result.stdout[-4000:] + result.stderr[-2000:]
    (row,) = result.rows()
    assert row["failure_category"] == "slo_violation", row.get("error")
    assert "client_outage_s" in row["error"] and "TTL of 3600 s" in row["error"], row["error"]
    metrics = row["metrics"]
    assert row["client_outage_s"] / TIME_SCALE > 300
    # The clients' caches are what kept them failing: the CNAME pinned the failed region's target.
    assert metrics["outage_client_cache_s"] > metrics["outage_detection_s"] + metrics["outage_routing_s"]
    assert metrics["outage_client_cache_s"] <= 3600 * TIME_SCALE + metrics["poll_s"] + 1.0
    assert row["rpo_lost_writes"] == 0
