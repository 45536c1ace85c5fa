"""iam:SimulatePrincipalPolicy on the local cloud, through boto3 over HTTP: AWS's response shape, and
the same decision a real call by that principal gets (allowed <-> served, denied <-> AccessDenied)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from gameday.localcloud.motoglue.server import AwsEndpoint
from gameday.localcloud.process.context import ACCOUNT_ID, ControlRoutes

REGION = "eu-west-1"
ROOT = {"aws_access_key_id": "gameday-test", "aws_secret_access_key": "gameday-test"}
TABLES = [f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/sim-{name}" for name in ("alpha", "beta", "gamma")]
ALPHA, BETA, GAMMA = TABLES


def document(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action: str, resource: str | list[str]) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


class Cloud:
    def __init__(self) -> None:
        self.endpoint = AwsEndpoint("127.0.0.1", 0, ControlRoutes(), iam=True)
        self.endpoint.start()
        self.iam = self.client("iam", ROOT)
        ddb = self.client("dynamodb", ROOT)
        for arn in TABLES:
            ddb.create_table(TableName=arn.rsplit("/", 1)[1], BillingMode="PAY_PER_REQUEST",
                             KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                             AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])

    def client(self, service: str, credentials: dict[str, str]) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=self.endpoint.url, **credentials)

    def user(self, *statements: dict[str, Any]) -> tuple[str, dict[str, str]]:
        name = f"sim-{uuid.uuid4().hex[:8]}"
        arn = self.iam.create_user(UserName=name)["User"]["Arn"]
        if statements:
            self.iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=document(*statements))
        key = self.iam.create_access_key(UserName=name)["AccessKey"]
        return arn, {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}


@pytest.fixture(scope="module")
def cloud() -> Iterator[Cloud]:
    running = Cloud()
    try:
        yield running
    finally:
        running.endpoint.stop()


def by_resource(result: dict[str, Any]) -> dict[str, str]:
    return {r["EvalResourceName"]: r["EvalResourceDecision"] for r in result["ResourceSpecificResults"]}


def test_each_action_has_one_result_with_each_resources_decision(cloud: Cloud) -> None:
    arn, _ = cloud.user(allow("dynamodb:DescribeTable", [ALPHA, BETA]),
                        allow("dynamodb:GetItem", "*"),
                        {"Effect": "Deny", "Action": "dynamodb:DescribeTable", "Resource": BETA})
    got = cloud.iam.simulate_principal_policy(PolicySourceArn=arn, ResourceArns=TABLES,
                                              ActionNames=["dynamodb:DescribeTable", "dynamodb:GetItem",
                                                           "dynamodb:PutItem"])
    results = {r["EvalActionName"]: r for r in got["EvaluationResults"]}
    assert list(results) == ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem"]
    assert got["IsTruncated"] is False
    assert by_resource(results["dynamodb:DescribeTable"]) == {ALPHA: "allowed", BETA: "explicitDeny",
                                                              GAMMA: "implicitDeny"}
    assert results["dynamodb:DescribeTable"]["EvalDecision"] == "explicitDeny"   # the most restrictive
    assert set(by_resource(results["dynamodb:GetItem"]).values()) == {"allowed"}
    assert results["dynamodb:GetItem"]["EvalDecision"] == "allowed"
    assert results["dynamodb:PutItem"]["EvalDecision"] == "implicitDeny"
    # Without ResourceArns the resource is "*", which a statement scoped to an ARN does not match.
    (star,) = cloud.iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=["dynamodb:DescribeTable"])[
        "EvaluationResults"]
    assert (star["EvalResourceName"], star["EvalDecision"]) == ("*", "implicitDeny")


def test_the_simulation_agrees_with_real_calls(cloud: Cloud) -> None:
    arn, keys = cloud.user(allow("dynamodb:Describe*", f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/sim-a*"),
                           {"Effect": "Deny", "Action": "dynamodb:*", "Resource": GAMMA})
    got = cloud.iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=["dynamodb:DescribeTable"],
                                              ResourceArns=TABLES)["EvaluationResults"][0]
    simulated = by_resource(got)
    ddb = cloud.client("dynamodb", keys)
    for table, decision in simulated.items():
        try:
            ddb.describe_table(TableName=table.rsplit("/", 1)[1])
            served = "allowed"
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "AccessDeniedException"
            served = "explicitDeny" if "explicit deny" in exc.response["Error"]["Message"] else "implicitDeny"
        assert served == decision, table
    assert simulated == {ALPHA: "allowed", BETA: "implicitDeny", GAMMA: "explicitDeny"}


def test_a_users_groups_count_and_a_role_is_simulated_with_its_boundary(cloud: Cloud) -> None:
    def decisions(source: str) -> dict[str, str]:
        got = cloud.iam.simulate_principal_policy(PolicySourceArn=source, ResourceArns=[ALPHA], ActionNames=[
            "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"])
        return {r["EvalActionName"]: r["EvalDecision"] for r in got["EvaluationResults"]}

    arn, _ = cloud.user(allow("dynamodb:*", "*"))
    name = arn.rsplit("/", 1)[1]
    cloud.iam.create_group(GroupName=f"g-{name}")
    cloud.iam.add_user_to_group(GroupName=f"g-{name}", UserName=name)
    cloud.iam.put_group_policy(GroupName=f"g-{name}", PolicyName="no-put", PolicyDocument=document(
        {"Effect": "Deny", "Action": "dynamodb:PutItem", "Resource": "*"}))
    assert decisions(arn) == {"dynamodb:GetItem": "allowed", "dynamodb:PutItem": "explicitDeny",
                              "dynamodb:DeleteItem": "allowed"}

    boundary = cloud.iam.create_policy(PolicyName=f"b-{name}", PolicyDocument=document(
        allow("dynamodb:Get*", "*")))["Policy"]["Arn"]
    role = cloud.iam.create_role(RoleName=f"r-{name}", PermissionsBoundary=boundary, AssumeRolePolicyDocument=document(
        {"Effect": "Allow", "Principal": {"AWS": ACCOUNT_ID}, "Action": "sts:AssumeRole"}))["Role"]["Arn"]
    cloud.iam.put_role_policy(RoleName=f"r-{name}", PolicyName="p", PolicyDocument=document(
        allow("dynamodb:GetItem", ALPHA), allow("dynamodb:DeleteItem", ALPHA)))
    assert decisions(role) == {"dynamodb:GetItem": "allowed", "dynamodb:PutItem": "implicitDeny",
                               "dynamodb:DeleteItem": "implicitDeny"}   # the boundary does not allow it


def test_pages_an_unknown_source_and_the_callers_own_permission(cloud: Cloud) -> None:
    arn, keys = cloud.user(allow("iam:SimulatePrincipalPolicy", "*"))
    actions = [f"dynamodb:Action{i}" for i in range(5)]
    pages = list(cloud.iam.get_paginator("simulate_principal_policy").paginate(
        PolicySourceArn=arn, ActionNames=actions, PaginationConfig={"PageSize": 2}))
    assert [len(p["EvaluationResults"]) for p in pages] == [2, 2, 1]
    assert [r["EvalActionName"] for p in pages for r in p["EvaluationResults"]] == actions

    with pytest.raises(ClientError) as unknown:
        cloud.iam.simulate_principal_policy(PolicySourceArn=f"arn:aws:iam::{ACCOUNT_ID}:user/nobody-here",
                                            ActionNames=["dynamodb:GetItem"])
    assert unknown.value.response["Error"]["Code"] == "NoSuchEntity"
    assert unknown.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404

    # Simulating is itself authorised: iam:SimulatePrincipalPolicy on the simulated user or role.
    assert cloud.client("iam", keys).simulate_principal_policy(PolicySourceArn=arn, ActionNames=["s3:GetObject"])
    other, other_keys = cloud.user(allow("iam:SimulatePrincipalPolicy", arn))
    with pytest.raises(ClientError) as refused:
        cloud.client("iam", other_keys).simulate_principal_policy(PolicySourceArn=other, ActionNames=["s3:GetObject"])
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert f"iam:SimulatePrincipalPolicy on resource: {other}" in refused.value.response["Error"]["Message"]
    assert cloud.client("iam", other_keys).simulate_principal_policy(PolicySourceArn=arn, ActionNames=["s3:GetObject"])
