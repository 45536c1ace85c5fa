"""The reference deployment's deep /health, and the fault that impairs a region's writes, against a
whole local cloud through its real interfaces (boto3 to the AWS endpoint, HTTPS to the data plane)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from gameday.aws import AwsClients
from gameday.deployment import Deployment, load_deployment
from gameday.faults.journal_file import Journal
from gameday.faults.write_impairment import POLICY_NAME, WriteImpairment
from gameday.localcloud.process.launcher import LocalCloud
from gameday.observe.pinned_http import PinnedClient

pytestmark = pytest.mark.xdist_group("deep_health")
DENY = "test-deny-writes"


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud() as started:
        yield started


@pytest.fixture(scope="module")
def deployment(cloud: LocalCloud) -> Deployment:
    return load_deployment(cloud.deployment_path)


def _client(cloud: LocalCloud, service: str, region: str = "eu-west-1") -> Any:
    return boto3.client(service, region_name=region, endpoint_url=cloud.aws_endpoint_url,
                        aws_access_key_id="gameday-test", aws_secret_access_key="gameday-test")


def _health(deployment: Deployment, region: str) -> tuple[int, str]:
    client = PinnedClient.for_region(deployment, region, timeout=(3.05, 5.0))
    try:
        answer = client.request("GET", "/health")
        return answer.status, json.dumps(answer.json())
    finally:
        client.close()


def _role(cloud: LocalCloud, deployment: Deployment, region: str, function: str) -> str:
    return _client(cloud, "lambda", region).get_function_configuration(FunctionName=function)["Role"].rsplit("/", 1)[-1]


def _until(predicate: Any, budget_s: float = 5.0) -> bool:
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_deep_health_fails_while_its_regions_writes_are_denied(cloud: LocalCloud, deployment: Deployment) -> None:
    region = deployment.regions[0]
    iam = _client(cloud, "iam")
    role = _role(cloud, deployment, region.name, region.functions.health)
    table_arn = f"arn:aws:dynamodb:{region.name}:123456789012:table/{deployment.table.name}"
    assert _health(deployment, region.name)[0] == 200
    iam.put_role_policy(RoleName=role, PolicyName=DENY, PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Action": "dynamodb:PutItem", "Resource": table_arn}]}))
    try:
        assert _until(lambda: _health(deployment, region.name)[0] == 503), _health(deployment, region.name)
        status, body = _health(deployment, region.name)
        assert "write to the table failed (AccessDeniedException)" in body and "arn:" not in body, body
        assert _health(deployment, deployment.regions[1].name)[0] == 200    # only that region's writes
    finally:
        iam.delete_role_policy(RoleName=role, PolicyName=DENY)
    assert _until(lambda: _health(deployment, region.name)[0] == 200)


def test_the_health_item_is_the_regions_own_and_no_api_id(cloud: LocalCloud, deployment: Deployment) -> None:
    assert _health(deployment, "us-east-1")[0] == 200
    assert _health(deployment, "eu-west-1")[0] == 200

    def health_items() -> dict[str, int]:
        items = _client(cloud, "dynamodb").scan(TableName=deployment.table.name)["Items"]
        return {i["name"]["S"]: int(i["id"]["N"]) for i in items if i["name"]["S"].startswith("__gameday_health__#")}

    assert _until(lambda: len(health_items()) == 2)   # the other region's item arrives by replication
    health = health_items()
    assert set(health) == {"__gameday_health__#eu-west-1", "__gameday_health__#us-east-1"}   # replicated, apart
    assert all(item_id < 0 for item_id in health.values()) and len(set(health.values())) == 2


def test_write_impairment_restores_the_roles_exactly_on_an_exception(
        cloud: LocalCloud, deployment: Deployment, tmp_path: Any) -> None:
    region = deployment.regions[1]
    iam = _client(cloud, "iam")
    roles = {_role(cloud, deployment, region.name, f) for f in (region.functions.put, region.functions.health)}
    before = {role: iam.list_role_policies(RoleName=role)["PolicyNames"] for role in roles}
    journal = Journal(tmp_path / "journal.jsonl")
    with pytest.raises(RuntimeError, match="mid-fault"):
        with WriteImpairment(deployment, region.name, clients=AwsClients(deployment), journal=journal) as fault:
            assert all(POLICY_NAME in iam.list_role_policies(RoleName=r)["PolicyNames"] for r in roles)
            assert fault.verified["answered"] >= 500
            assert _until(lambda: _health(deployment, region.name)[0] == 503)
            raise RuntimeError("mid-fault")
    assert {role: iam.list_role_policies(RoleName=role)["PolicyNames"] for role in roles} == before
    assert fault.restore_detail.startswith(f"{POLICY_NAME} deleted from")
    assert journal.pending() == []
    assert _until(lambda: _health(deployment, region.name)[0] == 200)
