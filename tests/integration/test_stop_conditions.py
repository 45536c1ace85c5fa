"""Stop conditions watched for real: a CloudWatch alarm set to ALARM through the API (moto over
HTTP), a stop file, SIGUSR1, and the game day's own error rate; each trips once, in one poll."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from gameday.safety.guardrails import AlarmRef, ErrorRate, StopConditions
from gameday.safety.stop_conditions import StopWatch, Tripped
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
    requests: list[tuple[float, bool]] = []
    trips: list[Tripped] = []
    # window 100 AWS-s at scale 0.01 = 1 s; at most 20% failing, judged from 10 requests on
    conditions = StopConditions(error_rate=ErrorRate(max=0.2, window_s=100, min_requests=10))
    with StopWatch(conditions, on_trip=trips.append, poll_s=POLL_S, time_scale=0.01,
                   requests=lambda: list(requests)):
        now = time.time()
        requests.extend((now - 5, False) for _ in range(50))         # old failures, outside the window
        requests.extend((now, i % 10 != 0) for i in range(20))       # 10% failing now
        time.sleep(4 * POLL_S)
        assert not trips
        now = time.time()
        requests.extend((now, i % 2 == 0) for i in range(20))        # with the 10%: 30% failing in the window
        wait_tripped(trips)
    assert [t.condition for t in trips] == ["error_rate"]
    assert "failed over the last 100 s" in trips[0].detail
