"""The deployment lease against DynamoDB's API (moto server over HTTP): conditional writes,
expiry, heartbeat, release, force-unlock, and two processes contending for one deployment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from gameday import infra
from gameday.safety.lease import Lease, LeaseHeld, LeaseLost, force_unlock
from tests.support.moto_rig import CREDENTIALS, aws_endpoint  # noqa: F401  (fixture)

REGION = "eu-west-1"
REPO = Path(__file__).resolve().parents[2]


def dynamodb(endpoint: str) -> Any:
    return boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint, **CREDENTIALS)


@pytest.fixture()
def table(aws_endpoint: str) -> str:  # noqa: F811
    """A lease table made from the shipped template's own key schema."""
    template = yaml.safe_load((infra.templates_dir() / "lease-table.yaml").read_text().replace("!Ref", "Ref")
                              .replace("!GetAtt", "GetAtt"))
    props = template["Resources"]["LeaseTable"]["Properties"]
    name = f"leases-{uuid.uuid4().hex[:8]}"
    dynamodb(aws_endpoint).create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                                        AttributeDefinitions=props["AttributeDefinitions"],
                                        KeySchema=props["KeySchema"])
    return name


def test_a_held_lease_refuses_a_second_run_naming_the_holder(aws_endpoint: str, table: str) -> None:  # noqa: F811
    client = dynamodb(aws_endpoint)
    with Lease(client, "dep-a", run_id="run-1", table=table, duration_s=30):
        with pytest.raises(LeaseHeld) as refused:
            Lease(client, "dep-a", run_id="run-2", table=table, duration_s=30).acquire()
    message = str(refused.value)
    assert "run-1" in message and str(os.getpid()) in message and "\n" not in message
    assert refused.value.exit_code == 3
    # released on exit: the next run takes it at once
    with Lease(client, "dep-a", run_id="run-3", table=table, duration_s=30) as lease:
        assert lease.current_holder().run_id == "run-3"


def test_other_deployments_are_independent(aws_endpoint: str, table: str) -> None:  # noqa: F811
    client = dynamodb(aws_endpoint)
    with Lease(client, "dep-a", run_id="run-1", table=table), Lease(client, "dep-b", run_id="run-2", table=table):
        pass


def test_an_expired_lease_is_taken_and_its_old_holder_learns_it_lost(aws_endpoint: str, table: str) -> None:  # noqa: F811
    client = dynamodb(aws_endpoint)
    stale = Lease(client, "dep-a", run_id="killed", table=table, duration_s=2.0)
    assert stale.try_acquire() is not None           # no heartbeat: as if the holder was SIGKILLed
    with pytest.raises(LeaseHeld):
        Lease(client, "dep-a", run_id="early", table=table, duration_s=5).acquire()
    time.sleep(2.1)
    with Lease(client, "dep-a", run_id="next", table=table, duration_s=5) as taken:
        assert taken.current_holder().run_id == "next"
        with pytest.raises(LeaseLost):
            stale.extend()
        stale.release()                              # never deletes another run's lease
        assert taken.current_holder().run_id == "next"


def test_the_heartbeat_keeps_a_lease_past_its_duration(aws_endpoint: str, table: str) -> None:  # noqa: F811
    client = dynamodb(aws_endpoint)
    with Lease(client, "dep-a", run_id="long", table=table, duration_s=1.5) as lease:
        first_until = lease.current_holder().until
        time.sleep(3.5)                              # over two durations: alive only through heartbeats
        with pytest.raises(LeaseHeld):
            Lease(client, "dep-a", run_id="other", table=table, duration_s=1.5).acquire()
        assert lease.current_holder().until > first_until


def test_waiting_for_a_lease_takes_it_when_released(aws_endpoint: str, table: str) -> None:  # noqa: F811
    client = dynamodb(aws_endpoint)
    first = Lease(client, "dep-a", run_id="first", table=table, duration_s=30)
    first.acquire()
    release_at = time.monotonic() + 0.5
    import threading

    timer = threading.Timer(0.5, first.close)
    timer.start()
    try:
        with Lease(client, "dep-a", run_id="second", table=table, duration_s=30, wait_s=10) as second:
            assert time.monotonic() >= release_at
            assert second.current_holder().run_id == "second"
    finally:
        timer.cancel()
        first.close()


def test_force_unlock_names_who_held_it_and_the_holder_loses_it(aws_endpoint: str, table: str) -> None:  # noqa: F811
    client = dynamodb(aws_endpoint)
    lost: list[LeaseLost] = []
    lease = Lease(client, "dep-a", run_id="stuck", table=table, duration_s=0.6, on_lost=lost.append)
    lease.acquire()
    try:
        holder = force_unlock(client, "dep-a", table=table)
        assert holder is not None and holder.run_id == "stuck" and "token" not in holder.public()
        deadline = time.monotonic() + 5
        while not lost and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lost, "the heartbeat did not notice the lease was taken away"
        assert force_unlock(client, "dep-a", table=table) is None
    finally:
        lease.close()


CONTENDER = """
import sys, time, boto3
from gameday.safety.lease import Lease, LeaseHeld
endpoint, table, run_id, out = sys.argv[1:5]
client = boto3.client("dynamodb", region_name="eu-west-1", endpoint_url=endpoint,
                      aws_access_key_id="testing", aws_secret_access_key="testing")
with Lease(client, "shared", run_id=run_id, table=table, duration_s=1.0, wait_s=30):
    start = time.time()
    time.sleep(0.4)                       # the "fault window"
    with open(out, "a") as f:
        f.write(f"{run_id} {start!r} {time.time()!r}\\n")
"""


def test_concurrent_processes_never_hold_one_deployment_at_once(aws_endpoint: str, table: str,  # noqa: F811
                                                                tmp_path: Path) -> None:
    out = tmp_path / "windows.txt"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", CONTENDER, aws_endpoint, table, f"run-{i}", str(out)], env=env,
                              start_new_session=True) for i in range(3)]
    try:
        for proc in procs:
            assert proc.wait(timeout=60) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    windows = sorted(tuple(float(x) for x in line.split()[1:]) for line in out.read_text().splitlines())
    assert len(windows) == 3
    for (_, end), (start, _) in zip(windows, windows[1:], strict=False):
        assert start >= end, f"two runs held the lease at once: {windows}"
