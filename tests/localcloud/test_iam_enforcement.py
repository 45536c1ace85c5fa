"""IAM enforced by the local cloud as AWS enforces it, through its real interfaces: boto3 over HTTP
to the AWS endpoint, and HTTP to the data plane of a whole local cloud.

The account root (the dummy keys) is unrestricted; IAM users' keys and assumed-role sessions are
authorised against their policies with each request's real resource ARN; a function's handler runs
with its execution role, so an inline Deny on that role makes its calls fail.
"""

from __future__ import annotations

import io
import json
import random
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from gameday.deployment import load_deployment
from gameday.load.global_client import GlobalClient, GlobalResponse
from gameday.localcloud.motoglue.server import AwsEndpoint
from gameday.localcloud.process.context import ACCOUNT_ID, ControlRoutes
from gameday.localcloud.process.launcher import LocalCloud

REGION = "eu-west-1"
ROOT = {"aws_access_key_id": "gameday-test", "aws_secret_access_key": "gameday-test"}
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


def zipped(source: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("handler.py", source)
    return buf.getvalue()


def document(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


class Api:
    """An AWS endpoint with IAM enforced, two Lambda functions, and helpers to make IAM users."""

    def __init__(self) -> None:
        self.endpoint = AwsEndpoint("127.0.0.1", 0, ControlRoutes(), iam=True)
        self.endpoint.start()
        self.suffix = f"{random.randint(0, 10**6):06d}"
        self.iam = self.client("iam", ROOT)
        role = self.iam.create_role(RoleName=f"iam-test-{self.suffix}", AssumeRolePolicyDocument=TRUST)
        lam = self.client("lambda", ROOT)
        self.functions = {}
        for name in ("alpha", "beta"):
            self.functions[name] = lam.create_function(
                FunctionName=f"iam-{name}-{self.suffix}", Runtime="python3.11", Role=role["Role"]["Arn"],
                Handler="handler.handler", Code={"ZipFile": zipped("def handler(e, c):\n    return 1\n")},
                Environment={"Variables": {"k": name}})["FunctionArn"]

    def client(self, service: str, credentials: dict[str, str], region: str = REGION) -> Any:
        return boto3.client(service, region_name=region, endpoint_url=self.endpoint.url, **credentials)

    def user(self, *statements: dict[str, Any]) -> dict[str, str]:
        """A new IAM user holding one inline policy with `statements`; its access key."""
        name = f"runner-{uuid.uuid4().hex[:8]}"
        self.iam.create_user(UserName=name)
        if statements:
            self.iam.put_user_policy(UserName=name, PolicyName="gameday", PolicyDocument=document(*statements))
        key = self.iam.create_access_key(UserName=name)["AccessKey"]
        return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"],
                "_user": name}

    @staticmethod
    def creds(user: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in user.items() if not k.startswith("_")}

    def stop(self) -> None:
        self.endpoint.stop()


@pytest.fixture(scope="module")
def api() -> Iterator[Api]:
    running = Api()
    try:
        yield running
    finally:
        running.stop()


def denied(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    error = exc.value.response["Error"]
    return error["Code"], exc.value.response["ResponseMetadata"]["HTTPStatusCode"], error["Message"]


# --- API only ---

def test_a_user_reads_the_function_its_policy_names_and_is_denied_another(api: Api) -> None:
    user = api.user({"Effect": "Allow", "Action": "lambda:GetFunctionConfiguration", "Resource": api.functions["alpha"]})
    lam = api.client("lambda", api.creds(user))
    assert lam.get_function_configuration(FunctionName=f"iam-alpha-{api.suffix}")["Environment"]["Variables"] == {"k": "alpha"}
    with pytest.raises(ClientError) as exc:
        lam.get_function_configuration(FunctionName=f"iam-beta-{api.suffix}")
    code, status, message = denied(exc)
    assert (code, status) == ("AccessDeniedException", 403)
    assert message == (f"User: arn:aws:iam::{ACCOUNT_ID}:user/{user['_user']} is not authorized to perform: "
                       f"lambda:GetFunctionConfiguration on resource: {api.functions['beta']} because no "
                       "identity-based policy allows the lambda:GetFunctionConfiguration action")
    # The same function by ARN is the same resource; another action on it is not allowed.
    assert lam.get_function_configuration(FunctionName=api.functions["alpha"])["FunctionArn"] == api.functions["alpha"]
    with pytest.raises(ClientError) as exc:
        lam.update_function_configuration(FunctionName=api.functions["alpha"], Environment={"Variables": {}})
    assert "lambda:UpdateFunctionConfiguration on resource: " + api.functions["alpha"] in denied(exc)[2]
    with pytest.raises(ClientError) as exc:
        lam.list_functions()
    assert "lambda:ListFunctions on resource: *" in denied(exc)[2]


def test_lambda_concurrency_and_tags_are_authorised_on_the_function(api: Api) -> None:
    alpha = api.functions["alpha"]
    user = api.user({"Effect": "Allow", "Action": ["lambda:PutFunctionConcurrency", "lambda:GetFunctionConcurrency",
                                                   "lambda:DeleteFunctionConcurrency", "lambda:TagResource",
                                                   "lambda:UntagResource", "lambda:ListTags", "lambda:GetFunction"],
                     "Resource": alpha})
    lam = api.client("lambda", api.creds(user))
    lam.put_function_concurrency(FunctionName=alpha, ReservedConcurrentExecutions=3)
    assert lam.get_function_concurrency(FunctionName=alpha)["ReservedConcurrentExecutions"] == 3
    lam.delete_function_concurrency(FunctionName=alpha)
    lam.tag_resource(Resource=alpha, Tags={"gameday:fault": "run-1"})
    assert lam.list_tags(Resource=alpha)["Tags"] == {"gameday:fault": "run-1"}
    lam.untag_resource(Resource=alpha, TagKeys=["gameday:fault"])
    assert lam.get_function(FunctionName=alpha)["Configuration"]["FunctionArn"] == alpha
    beta = api.functions["beta"]
    for call, action in ((lambda: lam.put_function_concurrency(FunctionName=beta, ReservedConcurrentExecutions=0),
                          "lambda:PutFunctionConcurrency"),
                         (lambda: lam.tag_resource(Resource=beta, Tags={"a": "b"}), "lambda:TagResource"),
                         (lambda: lam.get_function(FunctionName=beta), "lambda:GetFunction")):
        with pytest.raises(ClientError) as exc:
            call()
        assert f"{action} on resource: {beta}" in denied(exc)[2]
    assert api.client("lambda", ROOT).get_function_concurrency(FunctionName=beta).get("ReservedConcurrentExecutions") is None


def test_an_explicit_deny_wins_over_an_allow(api: Api) -> None:
    user = api.user({"Effect": "Allow", "Action": "lambda:*", "Resource": "*"},
                    {"Effect": "Deny", "Action": "lambda:GetFunctionConfiguration", "Resource": api.functions["beta"]})
    lam = api.client("lambda", api.creds(user))
    assert lam.get_function_configuration(FunctionName=api.functions["alpha"])
    with pytest.raises(ClientError) as exc:
        lam.get_function_configuration(FunctionName=api.functions["beta"])
    code, status, message = denied(exc)
    assert (code, status) == ("AccessDeniedException", 403)
    assert message.endswith(f"lambda:GetFunctionConfiguration on resource: {api.functions['beta']} "
                            "with an explicit deny in an identity-based policy")
    # A Deny in a group's policy counts as well.
    group = f"deny-{api.suffix}-{uuid.uuid4().hex[:4]}"
    api.iam.create_group(GroupName=group)
    api.iam.put_group_policy(GroupName=group, PolicyName="no-lambda",
                             PolicyDocument=document({"Effect": "Deny", "Action": "lambda:*", "Resource": "*"}))
    api.iam.add_user_to_group(GroupName=group, UserName=user["_user"])
    with pytest.raises(ClientError) as exc:
        lam.get_function_configuration(FunctionName=api.functions["alpha"])
    assert "explicit deny" in denied(exc)[2]


def test_the_root_dummy_keys_and_unsigned_calls_stay_unrestricted(api: Api) -> None:
    user = api.user({"Effect": "Deny", "Action": "*", "Resource": "*"})
    for credentials in (ROOT, {"aws_access_key_id": "AKIAIOSFODNN7EXAMPLE", "aws_secret_access_key": "x"}):
        lam = api.client("lambda", credentials)
        assert {f["FunctionArn"] for f in lam.list_functions()["Functions"]} >= set(api.functions.values())
        lam.update_function_configuration(FunctionName=api.functions["beta"], Environment={"Variables": {"k": "beta"}})
        assert api.client("sts", credentials).get_caller_identity()["Account"] == ACCOUNT_ID
    # GetCallerIdentity needs no permission, and a Deny does not apply to it (as on AWS).
    assert api.client("sts", api.creds(user)).get_caller_identity()["Arn"].endswith(f"user/{user['_user']}")
    with pytest.raises(ClientError) as exc:
        api.client("lambda", api.creds(user)).list_functions()
    assert "explicit deny" in denied(exc)[2]


def test_dynamodb_refuses_in_its_own_shape_naming_action_and_table(api: Api) -> None:
    table = f"iam-table-{api.suffix}"
    api.client("dynamodb", ROOT).create_table(
        TableName=table, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}], BillingMode="PAY_PER_REQUEST")
    arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{table}"
    user = api.user({"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": arn})
    ddb = api.client("dynamodb", api.creds(user))
    assert "Item" not in ddb.get_item(TableName=table, Key={"id": {"N": "1"}})
    with pytest.raises(ClientError) as exc:
        ddb.put_item(TableName=table, Item={"id": {"N": "1"}})
    code, status, message = denied(exc)
    assert (code, status) == ("AccessDeniedException", 400)
    assert message == (f"User: arn:aws:iam::{ACCOUNT_ID}:user/{user['_user']} is not authorized to perform: "
                       f"dynamodb:PutItem on resource: {arn} because no identity-based policy allows the "
                       "dynamodb:PutItem action")
    with pytest.raises(ClientError) as exc:
        ddb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": {"id": {"N": "2"}}}}]})
    assert f"dynamodb:BatchWriteItem on resource: {arn}" in denied(exc)[2]
    with pytest.raises(ClientError) as exc:  # in another region, the table is another resource
        api.client("dynamodb", api.creds(user), region="us-east-1").get_item(TableName=table, Key={"id": {"N": "1"}})
    assert f"table/{table}" in denied(exc)[2] and ":us-east-1:" in denied(exc)[2]


def test_route53_health_checks_zones_and_test_dns_answer(api: Api) -> None:
    r53 = api.client("route53", ROOT, region="us-east-1")
    checks = [r53.create_health_check(CallerReference=uuid.uuid4().hex, HealthCheckConfig={
        "Type": "HTTP", "FullyQualifiedDomainName": f"h{i}.example.org", "Port": 80, "ResourcePath": "/health"}
    )["HealthCheck"]["Id"] for i in range(2)]
    zone = r53.create_hosted_zone(Name=f"iam{api.suffix}.example.org", CallerReference=uuid.uuid4().hex)
    zone_id = zone["HostedZone"]["Id"].rsplit("/", 1)[-1]
    user = api.user({"Effect": "Allow", "Action": ["route53:GetHealthCheck"],
                     "Resource": f"arn:aws:route53:::healthcheck/{checks[0]}"},
                    {"Effect": "Allow", "Action": ["route53:ListResourceRecordSets"],
                     "Resource": f"arn:aws:route53:::hostedzone/{zone_id}"})
    mine = api.client("route53", api.creds(user), region="us-east-1")
    assert mine.get_health_check(HealthCheckId=checks[0])["HealthCheck"]["Id"] == checks[0]
    assert mine.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    for call, action, resource in (
            (lambda: mine.get_health_check(HealthCheckId=checks[1]), "route53:GetHealthCheck",
             f"arn:aws:route53:::healthcheck/{checks[1]}"),
            (lambda: mine.get_health_check_status(HealthCheckId=checks[0]), "route53:GetHealthCheckStatus",
             f"arn:aws:route53:::healthcheck/{checks[0]}"),
            (lambda: mine.get_health_check_last_failure_reason(HealthCheckId=checks[0]),
             "route53:GetHealthCheckLastFailureReason", f"arn:aws:route53:::healthcheck/{checks[0]}"),
            (lambda: mine.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [
                {"Action": "UPSERT", "ResourceRecordSet": {"Name": f"a.iam{api.suffix}.example.org", "Type": "A",
                                                           "TTL": 60, "ResourceRecords": [{"Value": "127.0.0.1"}]}}]}),
             "route53:ChangeResourceRecordSets", f"arn:aws:route53:::hostedzone/{zone_id}"),
            (lambda: mine.test_dns_answer(HostedZoneId=zone_id, RecordName="a", RecordType="A"),
             "route53:TestDNSAnswer", "*")):
        with pytest.raises(ClientError) as exc:
            call()
        code, status, message = denied(exc)
        assert (code, status) == ("AccessDenied", 403)
        assert f"{action} on resource: {resource} because" in message


def test_cloudwatch_alarms_by_name(api: Api) -> None:
    cw = api.client("cloudwatch", ROOT)
    for name in ("api-5xx", "other"):
        cw.put_metric_alarm(AlarmName=f"{name}-{api.suffix}", MetricName="5XXError", Namespace="AWS/ApiGateway",
                            Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1,
                            ComparisonOperator="GreaterThanThreshold")
    arn = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:api-5xx-{api.suffix}"
    user = api.user({"Effect": "Allow", "Action": "cloudwatch:DescribeAlarms", "Resource": arn})
    mine = api.client("cloudwatch", api.creds(user))
    found = mine.describe_alarms(AlarmNames=[f"api-5xx-{api.suffix}"])["MetricAlarms"]
    assert [a["AlarmArn"] for a in found] == [arn]
    with pytest.raises(ClientError) as exc:
        mine.describe_alarms(AlarmNames=[f"api-5xx-{api.suffix}", f"other-{api.suffix}"])
    code, status, message = denied(exc)
    assert (code, status) == ("AccessDenied", 403)
    assert f"cloudwatch:DescribeAlarms on resource: arn:aws:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:other-{api.suffix}" in message
    with pytest.raises(ClientError) as exc:  # all alarms: resource "*"
        mine.describe_alarms()
    assert "cloudwatch:DescribeAlarms on resource: * because" in denied(exc)[2]


def test_an_assumed_role_session_carries_the_roles_policies(api: Api) -> None:
    role_name = f"runner-role-{uuid.uuid4().hex[:6]}"
    role = api.iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
    api.iam.put_role_policy(RoleName=role_name, PolicyName="read-alpha", PolicyDocument=document(
        {"Effect": "Allow", "Action": "lambda:GetFunctionConfiguration", "Resource": api.functions["alpha"]}))
    creds = api.client("sts", ROOT).assume_role(RoleArn=role, RoleSessionName="gameday")["Credentials"]
    session = {"aws_access_key_id": creds["AccessKeyId"], "aws_secret_access_key": creds["SecretAccessKey"],
               "aws_session_token": creds["SessionToken"]}
    lam = api.client("lambda", session)
    assert lam.get_function_configuration(FunctionName=api.functions["alpha"])
    with pytest.raises(ClientError) as exc:
        lam.get_function_configuration(FunctionName=api.functions["beta"])
    assert denied(exc)[2].startswith(f"User: arn:aws:sts::{ACCOUNT_ID}:assumed-role/{role_name}/gameday is not authorized")
    # An AWS managed policy attached to the role applies too.
    api.iam.attach_role_policy(RoleName=role_name, PolicyArn="arn:aws:iam::aws:policy/AWSLambda_ReadOnlyAccess")
    assert lam.get_function_configuration(FunctionName=api.functions["beta"])
    # A wrong session token is refused, not taken for the account root.
    forged = api.client("lambda", {**session, "aws_session_token": "forged"})
    with pytest.raises(ClientError) as exc:
        forged.list_functions()
    assert denied(exc)[0] == "UnrecognizedClientException"


def test_a_deleted_key_is_refused(api: Api) -> None:
    user = api.user({"Effect": "Allow", "Action": "*", "Resource": "*"})
    sts = api.client("sts", api.creds(user))
    assert sts.get_caller_identity()
    api.iam.delete_access_key(UserName=user["_user"], AccessKeyId=user["aws_access_key_id"])
    with pytest.raises(ClientError) as exc:
        api.client("iam", api.creds(user)).list_users()
    assert denied(exc)[:2] == ("InvalidClientTokenId", 403)


def test_enforcement_is_switched_by_the_control_route(api: Api) -> None:
    user = api.user()
    lam = api.client("lambda", api.creds(user))
    control = f"{api.endpoint.url}/_gameday/iam"
    assert requests.get(control, timeout=5).json() == {"enforce": True}
    with pytest.raises(ClientError):
        lam.list_functions()
    try:
        assert requests.post(control, json={"enforce": False}, timeout=5).json() == {"enforce": False}
        assert lam.list_functions()["Functions"]
    finally:
        requests.post(control, json={"enforce": True}, timeout=5)
    with pytest.raises(ClientError):
        lam.list_functions()
    assert requests.post(control, json={"enforce": "yes"}, timeout=5).status_code == 400


# --- a whole local cloud: a handler's calls carry its execution role ---

@pytest.fixture(scope="module", params=["in-process", "http"])
def cloud(request: pytest.FixtureRequest) -> Iterator[LocalCloud]:
    """Both ways a handler's calls reach the AWS endpoint: served in process, or signed over HTTP."""
    with LocalCloud(extra_args=["--handler-transport", request.param]) as running:
        yield running


def test_a_deny_on_the_putitem_role_fails_writes_while_health_stays_green(cloud: LocalCloud) -> None:
    description = cloud.description
    region = description["regions"][0]
    root = {"region_name": region["name"], "endpoint_url": description["aws_endpoint_url"], **ROOT}
    lam = boto3.client("lambda", **root)
    iam = boto3.client("iam", **root)
    role_name = lam.get_function_configuration(FunctionName=region["functions"]["put"])["Role"].rsplit("/", 1)[-1]
    # the region's own API host, resolved through the cloud's DNS, TLS verified against its CA
    api = GlobalClient.for_region(load_deployment(cloud.deployment_path), region["name"], timeout=10)
    # The template's role as CloudFormation makes it: the managed policy attached, the inline one put.
    attached = iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AWSLambdaBasicExecutionRole"]
    assert iam.list_role_policies(RoleName=role_name)["PolicyNames"] == ["gameday-table-access"]

    def write(item_id: int) -> GlobalResponse:
        return api.post("/item", json={"id": item_id, "name": "iam"})

    assert write(1).status == 200
    iam.put_role_policy(RoleName=role_name, PolicyName="gameday-write-impairment", PolicyDocument=document(
        {"Effect": "Deny", "Action": "dynamodb:PutItem", "Resource": "*"}))
    try:
        refused = write(2)
        assert refused.status == 500, refused.response.text
        error = refused.json()["error"]
        assert error.startswith("write failed") and "AccessDeniedException" in error
        assert f"assumed-role/{role_name}/{region['functions']['put']}" in error
        assert "dynamodb:PutItem" in error and "with an explicit deny in an identity-based policy" in error
        assert api.get("/health").status == 200
        assert api.get("/item/1").status == 200  # GetItem's role is untouched
    finally:
        iam.delete_role_policy(RoleName=role_name, PolicyName="gameday-write-impairment")
    assert write(3).status == 200
    api.close()
