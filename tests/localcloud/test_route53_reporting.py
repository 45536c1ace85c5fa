"""Route 53 health as AWS reports it: observations are each checker's latest probe result with its
CheckedTime, the status flips per FailureThreshold and the 18% rule, the CloudWatch metrics follow
the status, and the API throttles per account with AWS's error."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config
from tenacity import Retrying, stop_after_delay, wait_fixed

from gameday.localcloud.route53 import throttling
from gameday.localcloud.route53.health_checkers import CHECKER_NETWORKS
from tests.support.route53_rig import INTERVAL, REGIONS, THRESHOLD, Rig, start_rig, stop_rig

PRIMARY = REGIONS[0]
WAIT_S = 10.0


@pytest.fixture(scope="module")
def rig_session() -> Iterator[Rig]:
    rig = start_rig()
    try:
        yield rig
    finally:
        stop_rig(rig)


@pytest.fixture
def rig(rig_session: Rig) -> Iterator[Rig]:
    yield rig_session
    rig_session.cleanup()


def observations(rig: Rig, hc_id: str) -> list[dict]:
    return rig.route53.get_health_check_status(HealthCheckId=hc_id)["HealthCheckObservations"]


def checker_name(observation: dict) -> str:
    """The truth log's checker name from an observation's (Region, IPAddress)."""
    base = int(CHECKER_NETWORKS[observation["Region"]].rsplit(".", 1)[1])
    index = int(observation["IPAddress"].rsplit(".", 1)[1]) - base - 1
    return f"{observation['Region']}/{index}"


def wait_all_success(rig: Rig, hc_id: str) -> None:
    for attempt in Retrying(stop=stop_after_delay(WAIT_S), wait=wait_fixed(0.02), reraise=True):
        with attempt:
            assert all(o["StatusReport"]["Status"].startswith("Success: HTTP") for o in observations(rig, hc_id))


def test_observations_are_latest_probe_results_and_status_flips_per_threshold(rig: Rig) -> None:
    hc_id = rig.health_check(PRIMARY)
    wait_all_success(rig, hc_id)
    fault = time.time()
    rig.servers[PRIMARY].status = 404
    # Poll the observations: they turn to Failure one probe after the fault, while the status holds.
    seen_failing_while_healthy = False
    for attempt in Retrying(stop=stop_after_delay(WAIT_S), wait=wait_fixed(0.005), reraise=True):
        with attempt:
            obs = observations(rig, hc_id)
            failing = sum(1 for o in obs if o["StatusReport"]["Status"].startswith("Failure"))
            if failing and rig.physics.fleet.status(hc_id):
                seen_failing_while_healthy = True
            assert failing / len(obs) > 0.82
    observed_at = time.time()
    assert seen_failing_while_healthy, "an observation showed Failure only after the status flipped"
    flipped_at = observed_at + rig.wait_health(hc_id, False, WAIT_S)
    # When >82% of the observations first failed: the CheckedTime of the failing result that tipped it
    # (a loaded machine may see it late; the probes' own times say when it happened).
    failing_times = sorted(o["StatusReport"]["CheckedTime"].timestamp() for o in obs
                           if o["StatusReport"]["Status"].startswith("Failure"))
    rule_at = failing_times[math.floor(0.82 * len(obs))]
    assert fault <= rule_at <= observed_at
    # The status flips only once more than 82% of the checkers have had THRESHOLD failing probes in a
    # row: per checker, the time of its THRESHOLD-th failing probe after the fault, from the ground
    # truth (a loaded machine stretches or squeezes the gaps between probes; their own times count).
    failures: dict[str, list[float]] = {}
    for event in rig.ctx.truth.events(kind="checker_result"):
        if event["health_check_id"] == hc_id and event["t"] >= fault and not event["ok"]:
            failures.setdefault(event["checker"], []).append(event["t"])
    at_threshold = sorted(times[THRESHOLD - 1] for times in failures.values() if len(times) >= THRESHOLD)
    tipped_at = at_threshold[math.floor(0.82 * len(obs))]
    status_at = next(e["t"] for e in rig.ctx.truth.events(kind="health_status")
                     if e["health_check_id"] == hc_id and e["t"] >= fault and not e["healthy"])
    assert rule_at < tipped_at <= status_at <= flipped_at, (rule_at, tipped_at, status_at, flipped_at)

    # Every observation is that checker's latest result, at the time it probed.
    obs = observations(rig, hc_id)
    asked = time.time()
    results = [e for e in rig.ctx.truth.events(kind="checker_result") if e["health_check_id"] == hc_id]
    for o in obs:
        mine = [e for e in results if e["checker"] == checker_name(o) and e["t"] <= asked]
        assert mine, o
        latest = mine[-1]
        checked = o["StatusReport"]["CheckedTime"].timestamp()
        assert abs(checked - latest["t"]) < 0.05 or any(abs(checked - e["t"]) < 0.05 for e in mine[-2:]), (o, latest)
        assert o["StatusReport"]["Status"].startswith("Success" if any(
            abs(checked - e["t"]) < 0.05 and e["ok"] for e in mine[-2:]) else "Failure")

    # Recovery: observations turn to Success before the status does.
    restore = time.time()
    rig.servers[PRIMARY].status = 200
    for attempt in Retrying(stop=stop_after_delay(WAIT_S), wait=wait_fixed(0.005), reraise=True):
        with attempt:
            assert any(o["StatusReport"]["Status"].startswith("Success") for o in observations(rig, hc_id))
    assert rig.physics.fleet.status(hc_id) is False or time.time() - restore > rig.scaled(INTERVAL)
    rig.wait_health(hc_id, True, WAIT_S)


def test_cloudwatch_metrics_follow_the_status(rig: Rig) -> None:
    hc_id = rig.health_check(PRIMARY)
    wait_all_success(rig, hc_id)
    cloudwatch = boto3.client("cloudwatch", endpoint_url=rig.endpoint.url, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
    period = rig.physics.metrics.period_s
    assert period == pytest.approx(60 * rig.ctx.settings.time_scale)
    start = datetime.now(UTC) - timedelta(seconds=5)
    rig.servers[PRIMARY].status = 404
    rig.wait_health(hc_id, False, WAIT_S)
    time.sleep(2 * period + 0.1)

    def stats(metric: str) -> list[dict]:
        return cloudwatch.get_metric_statistics(
            Namespace="AWS/Route53", MetricName=metric, Dimensions=[{"Name": "HealthCheckId", "Value": hc_id}],
            StartTime=start, EndTime=datetime.now(UTC) + timedelta(seconds=5), Period=1,
            Statistics=["Minimum", "Maximum"])["Datapoints"]

    for attempt in Retrying(stop=stop_after_delay(WAIT_S), wait=wait_fixed(0.2), reraise=True):
        with attempt:
            status = stats("HealthCheckStatus")
            assert min(p["Minimum"] for p in status) == 0.0
            assert max(p["Maximum"] for p in status) == 1.0
            percent = stats("HealthCheckPercentageHealthy")
            assert max(p["Maximum"] for p in percent) == 100.0, (percent, status)
            assert min(p["Minimum"] for p in percent) <= 18.0
    listed = cloudwatch.list_metrics(Namespace="AWS/Route53")["Metrics"]
    assert {m["MetricName"] for m in listed if {"Name": "HealthCheckId", "Value": hc_id} in m["Dimensions"]} == {
        "HealthCheckStatus", "HealthCheckPercentageHealthy"}
    other_region = boto3.client("cloudwatch", endpoint_url=rig.endpoint.url, region_name="eu-west-1",
                                aws_access_key_id="testing", aws_secret_access_key="testing")
    assert not other_region.list_metrics(Namespace="AWS/Route53")["Metrics"]   # us-east-1 only


def test_api_throttles_per_account_with_aws_error(rig: Rig) -> None:
    hc_id = rig.health_check(PRIMARY)
    limits = rig.physics.limits
    assert limits is not None
    saved = limits.time_scale
    limits.time_scale = 1.0          # AWS's own rates: burst 4, then 1 per second
    limits._buckets.clear()
    try:
        other_key = boto3.client("route53", endpoint_url=rig.endpoint.url, region_name="us-east-1",
                                 aws_access_key_id="another", aws_secret_access_key="another",
                                 config=Config(retries={"max_attempts": 1, "mode": "standard"}))
        errors = []
        ok = 0
        began = time.monotonic()
        for client in (rig.route53, other_key) * 5:       # two callers, one account: one bucket
            try:
                client.get_health_check_status(HealthCheckId=hc_id)
                ok += 1
            except botocore.exceptions.ClientError as exc:
                errors.append(exc.response)
        refilled = int(time.monotonic() - began)          # 1 per second on a slow machine
        assert 4 <= ok <= 4 + refilled + 1 and len(errors) == 10 - ok and errors
        assert {e["Error"]["Code"] for e in errors} == {"Throttling"}
        assert {e["Error"]["Message"] for e in errors} == {"Rate exceeded"}
        assert {e["ResponseMetadata"]["HTTPStatusCode"] for e in errors} == {400}
        rig.route53.get_health_check(HealthCheckId=hc_id)        # other operations: the account bucket only
        time.sleep(1.05)
        rig.route53.get_health_check_status(HealthCheckId=hc_id)  # one token back after an AWS-second
        assert limits.figures()["throttled"]["GetHealthCheckStatus"] >= len(errors)
    finally:
        limits.time_scale = saved
        limits._buckets.clear()


def test_token_bucket_rates_are_divided_by_the_time_scale() -> None:
    limits = throttling.Route53Limits(0.01)
    admitted = sum(limits.admit("111111111111", "GetHealthCheckStatus") for _ in range(10))
    assert admitted == 4                       # burst, whatever the scale
    time.sleep(0.011)                          # 1.1 AWS-seconds at 0.01
    assert limits.admit("111111111111", "GetHealthCheckStatus")
    assert limits.admit("222222222222", "GetHealthCheckStatus")   # another account, its own bucket
    account = sum(limits.admit("333333333333", "ListHealthChecks") for _ in range(60))
    assert 50 <= account <= 52
