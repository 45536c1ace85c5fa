"""The account's Route 53 API budget: shared by processes through one file, and Throttling left to
the harness (botocore must not retry it with its unscaled backoff)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import boto3
import botocore.exceptions
import pytest
from botocore.awsrequest import AWSResponse

from gameday.observe import api_budget

THROTTLED_XML = (b'<?xml version="1.0"?><ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
                 b"<Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>"
                 b"<RequestId>x</RequestId></ErrorResponse>")

CHILD = """
import sys, time
from pathlib import Path
from gameday.observe.api_budget import SharedBudget
budget = SharedBudget(Path(sys.argv[1]), time_scale=0.1)
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.001)
for _ in range(int(sys.argv[3])):
    budget.acquire("GetHealthCheckStatus")
print(time.time() - start)
"""


def test_two_processes_share_one_budget(tmp_path: Path) -> None:
    path = tmp_path / "route53.json"
    per_process = 10
    start = time.time() + 1.0
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(start), str(per_process)],
                                 stdout=subprocess.PIPE, text=True) for _ in range(2)]
    took = [float(child.communicate(timeout=60)[0]) for child in children]
    budget = api_budget.SharedBudget(path, time_scale=0.1)
    (_, burst, rate), = [lim for lim in budget.limits("GetHealthCheckStatus") if lim[0] != "*"]
    assert rate == pytest.approx(8.0) and burst == 2.0       # 80% of 1 per AWS-second at 0.1; burst 4 - 2
    # Alone, each would finish in (10 - 2) / 8 = 1 s; sharing the account's bucket, the last needs ~2.25 s.
    assert max(took) >= (2 * per_process - burst) / rate - 0.1, took
    assert budget.shared_counts()["calls"] == 2 * per_process


def test_a_wait_never_outlasts_its_deadline(tmp_path: Path) -> None:
    budget = api_budget.SharedBudget(tmp_path / "b.json", time_scale=1.0)   # 0.8 per second
    budget.acquire("GetHealthCheckStatus")
    budget.acquire("GetHealthCheckStatus")
    with budget.deadline(time.monotonic() + 0.2), pytest.raises(api_budget.ApiBudgetExhausted):
        budget.acquire("GetHealthCheckStatus")


def proxy_throttling_every_other_call(client: object) -> list[int]:
    """A stand-in for a throttling proxy: every other GetHealthCheckStatus request is answered 400
    Throttling before it leaves the process."""
    sent = [0]

    def before_send(request: object = None, **_: object) -> AWSResponse | None:
        sent[0] += 1
        if sent[0] % 2 == 0:
            return AWSResponse("https://route53.amazonaws.com", 400, {"Content-Type": "text/xml"}, _Raw(THROTTLED_XML))
        return None

    client.meta.events.register_last("before-send.route53.GetHealthCheckStatus", before_send)  # type: ignore[attr-defined]
    return sent


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: object):
        yield self.body

    def read(self) -> bytes:
        return self.body


def test_botocore_does_not_retry_throttling_of_health_status(tmp_path: Path) -> None:
    client = boto3.client("route53", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
                          aws_access_key_id="x", aws_secret_access_key="x")
    budget = api_budget.install(client, api_budget.SharedBudget(tmp_path / "b.json", time_scale=0.01))
    sent = proxy_throttling_every_other_call(client)
    sent[0] = 1          # the next request is the throttled one
    began = time.monotonic()
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.get_health_check_status(HealthCheckId="abc")
    assert info.value.response["Error"]["Code"] == "Throttling"
    assert sent[0] == 2, "botocore retried a Throttling the harness handles itself"
    assert time.monotonic() - began < 0.5
    assert budget.snapshot().throttled == 1 and budget.snapshot().calls == 1
