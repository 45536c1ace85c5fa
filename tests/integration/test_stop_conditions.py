"""Stop conditions watched for real: a CloudWatch alarm set to ALARM through the API (moto over
HTTP), a stop file, SIGUSR1, and the game day's own error rate; each trips once, in one poll."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from gameday.faults.watch import FaultWatch, own_traffic
from gameday.safety.guardrails import AlarmRef, ErrorRate, Guardrails, StopConditions
from gameday.safety.stop_conditions import RequestWindow, StopWatch, Tripped
from tests.support.moto_rig import CREDENTIALS, aws_endpoint  # noqa: F401  (fixture)

REGION = "eu-west-1"
POLL_S = 0.05


def cloudwatch(endpoint: str):
    return lambda region: boto3.client("cloudwatch", region_name=region, endpoint_url=endpoint, **CREDENTIALS)


def put_alarm(endpoint: str, name: str) -> Any:
    client = cloudwatch(endpoint)(REGION)
    client.put_metric_alarm(AlarmName=name, MetricName="5XXError", Namespace="AWS/ApiGateway", Statistic="Sum",
                            Period=60, EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")
    return client


def wait_tripped(trips: list[Tripped], budget_s: float = 5.0) -> None:
    deadline = time.monotonic() + budget_s
    while not trips and time.monotonic() < deadline:
        time.sleep(0.01)


def test_an_alarm_in_alarm_trips_within_one_poll(aws_endpoint: str) -> None:  # noqa: F811
    client = put_alarm(aws_endpoint, "api-5xx")
    trips: list[Tripped] = []
    conditions = StopConditions(alarms=(AlarmRef(REGION, "api-5xx"),))
    with StopWatch(conditions, on_trip=trips.append, poll_s=POLL_S, cloudwatch=cloudwatch(aws_endpoint)) as watch:
        time.sleep(5 * POLL_S)
        assert not trips and watch.checks >= 2          # OK / INSUFFICIENT_DATA does not trip
        set_at = time.time()
        client.set_alarm_state(AlarmName="api-5xx", StateValue="ALARM", StateReason="5xx over threshold")
        wait_tripped(trips)
    assert len(trips) == 1 and trips[0].condition == "alarm"
    assert "api-5xx" in trips[0].detail and "5xx over threshold" in trips[0].detail
    assert trips[0].at - set_at < 1.0                    # one poll plus an API call, with margin


def test_a_stop_file_trips(tmp_path: Path) -> None:
    stop_file = tmp_path / "STOP"
    trips: list[Tripped] = []
    with StopWatch(StopConditions(stop_file=str(stop_file)), on_trip=trips.append, poll_s=POLL_S):
        time.sleep(3 * POLL_S)
        assert not trips
        stop_file.touch()
        wait_tripped(trips)
    assert [t.condition for t in trips] == ["stop_file"]


def test_sigusr1_from_outside_trips_once() -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach only the main thread")
    trips: list[Tripped] = []
    before = signal.getsignal(signal.SIGUSR1)
    with StopWatch(StopConditions(), on_trip=trips.append, poll_s=POLL_S):
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGUSR1)
        wait_tripped(trips)
    assert [t.condition for t in trips] == ["signal"]
    assert signal.getsignal(signal.SIGUSR1) == before    # the handler found is put back


def test_the_error_rate_of_the_window_trips_only_above_its_maximum() -> None:
    trips: list[Tripped] = []
    # window 1000 AWS-s at scale 0.01 = 10 s (nothing added below leaves it before the first look);
    # at most 20% failing, judged from 10 requests on
    conditions = StopConditions(error_rate=ErrorRate(max=0.2, window_s=1000, min_requests=10))
    window = RequestWindow(1000 * 0.01)
    with StopWatch(conditions, on_trip=trips.append, poll_s=POLL_S, time_scale=0.01, requests=window):
        now = time.time()
        for _ in range(50):
            window.add(now - 50, 503)                                    # old failures, outside the window
        for i in range(20):
            window.add(time.time(), 500 if i % 10 == 0 else 200)        # 10% failing now
        for _ in range(20):
            window.add(time.time(), 404)                                # a bad id: not the backend's failure
        time.sleep(4 * POLL_S)
        assert not trips
        for i in range(20):
            window.add(time.time(), None if i < 12 else 200, "ConnectionError: refused")  # 14 of 60 fail
        wait_tripped(trips)
    assert [t.condition for t in trips] == ["error_rate"]
    assert "23.3% of the game day's own requests failed (14 of 60) over the last 1000 s (10 s at time scale 0.01)" in \
        trips[0].detail, trips[0].detail
    assert "20.0%" in trips[0].detail and "ConnectionError: refused" in trips[0].detail


def test_the_window_forgets_what_left_it() -> None:
    window = RequestWindow(1.0)
    window.add(100.0, 500)
    window.add(100.5, 200)
    window.add(100.9, 429)
    assert window.counts(now=101.0) == (3, 2)
    assert window.counts(now=101.6) == (1, 1)                   # 100.0 and 100.5 are more than 1 s old
    assert window.counts(now=103.0) == (0, 0)
    assert (window.sent_total, window.failed_total) == (3, 2)   # the totals keep everything


def test_a_fault_watch_counts_its_deployments_traffic_only_while_in_place() -> None:
    deployment = SimpleNamespace(global_url="https://api.watch.test", aws_endpoint_url=None)
    other = own_traffic(SimpleNamespace(global_url="https://api.other.test", aws_endpoint_url=None))
    feed = own_traffic(deployment)
    assert own_traffic(deployment) is feed and other is not feed
    restored: list[float] = []
    guardrails = Guardrails(stop_conditions=StopConditions(
        error_rate=ErrorRate(max=0.1, window_s=100, min_requests=10)))
    for _ in range(100):
        feed.report(time.time(), 500)                  # before the fault: nobody listens
    watch = FaultWatch(guardrails, restore=lambda: restored.append(time.time()), time_scale=0.01, poll_s=POLL_S,
                       cloudwatch=None, describe="flip_health on gameday-Health", traffic=feed).start()
    try:
        for _ in range(30):
            feed.report(time.time(), 200)
            other.report(time.time(), 500)             # another deployment's traffic is not this fault's
        time.sleep(4 * POLL_S)
        assert not restored and watch.tripped is None
        for _ in range(10):
            feed.report(time.time(), 502)
        failed_at = time.time()
        deadline = time.monotonic() + 5
        while not restored and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        watch.stop()
    assert len(restored) == 1 and restored[0] - failed_at <= POLL_S + 0.5     # one poll, plus a loaded machine
    assert watch.tripped is not None and watch.tripped.condition == "error_rate"
    assert "(10 of 40)" in watch.tripped.detail and "HTTP 502" in watch.tripped.detail
    assert watch.counted() == {"requests": 40, "failed": 10, "window_s": 1.0, "last_error": "HTTP 502"}
    feed.report(time.time(), 500)                      # after the fault: not counted any more
    assert watch.counted()["requests"] == 40
