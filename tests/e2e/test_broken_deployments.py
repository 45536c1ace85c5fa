"""Each broken deployment makes `gameday run` fail, with a message naming the cause.

Every test starts its own local cloud (it breaks it), breaks it through the AWS API as an
operator could have, runs `gameday run --deployment FILE` and reads the verdict.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import yaml

from gameday.localcloud.process.launcher import LocalCloud
from tests.support.run_helpers import gameday

PRIMARY, SECONDARY = "eu-west-1", "us-east-1"


@pytest.fixture
def fresh_cloud() -> Iterator[LocalCloud]:
    with LocalCloud() as cloud:
        yield cloud


def client(cloud: LocalCloud, service: str, region: str = "us-east-1"):
    return boto3.client(service, region_name=region, endpoint_url=cloud.aws_endpoint_url,
                        aws_access_key_id="gameday-local", aws_secret_access_key="gameday-local")


def description(cloud: LocalCloud) -> dict:
    return yaml.safe_load(Path(cloud.deployment_path).read_text())


def region_of(cloud: LocalCloud, name: str) -> dict:
    return next(r for r in description(cloud)["regions"] if r["name"] == name)


def run_failing(cloud: LocalCloud, tmp_path: Path, region: str) -> dict:
    result = gameday("run", "--deployment", str(cloud.deployment_path), "-k", "region_failover", "--fail-region", region,
                     "--report-dir", str(tmp_path), "--no-html", report_dir=tmp_path)
    assert result.code != 0, result.stdout[-3000:]
    (row,) = result.rows()
    assert row["verdict"] == "fail"
    assert f"[{row['failure_category']}]" in result.stdout, result.stdout[-3000:]
    return row


def zip_of(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("health.py", source)
    return buffer.getvalue()


def test_health_check_on_the_wrong_path_never_fails(tmp_path: Path) -> None:
    # The check probes an item that exists, not /health: flipping Health changes nothing it sees.
    # Time scale 0.05: 16 checkers on a 10 s interval then ask GetItem 32 times a second, which a
    # loaded 2-core machine serves well within the checkers' timeout (at 0.01 it is 160/s).
    with LocalCloud(time_scale=0.05) as cloud:
        _wrong_path(cloud, tmp_path)


def _wrong_path(fresh_cloud: LocalCloud, tmp_path: Path) -> None:
    put = region_of(fresh_cloud, PRIMARY)
    client(fresh_cloud, "dynamodb", PRIMARY).put_item(
        TableName="MyGlobalTable", Item={"id": {"N": "1"}, "name": {"S": "always-here"}})
    client(fresh_cloud, "route53").update_health_check(HealthCheckId=put["health_check_id"],
                                                       ResourcePath="/prod/item/1")
    row = run_failing(fresh_cloud, tmp_path, PRIMARY)
    assert row["failure_category"] == "detection_timeout"
    assert "not unhealthy" in row["error"], row["error"]


def test_an_unhealthy_deployment_fails_as_steady_state_naming_what_the_checkers_saw(fresh_cloud: LocalCloud,
                                                                                      tmp_path: Path) -> None:
    # The check probes a path the API does not have: unhealthy before any fault.
    secondary = region_of(fresh_cloud, "us-east-1")
    client(fresh_cloud, "route53").update_health_check(HealthCheckId=secondary["health_check_id"],
                                                       ResourcePath="/prod/no-such-path")
    row = run_failing(fresh_cloud, tmp_path, PRIMARY)
    assert row["failure_category"] == "steady_state", row["error"]
    assert "us-east-1 is not healthy before any fault" in row["error"]
    assert "Failure: HTTP Status Code 403" in row["error"], row["error"]     # API Gateway: no such resource
    assert "fault" not in row["marks"]                                        # nothing was injected


def test_health_handler_that_ignores_its_environment(fresh_cloud: LocalCloud, tmp_path: Path) -> None:
    source = "def handler(event, context):\n    return {'statusCode': 200, 'body': '\"ok\"'}\n"
    lam = client(fresh_cloud, "lambda", PRIMARY)
    lam.update_function_code(FunctionName=region_of(fresh_cloud, PRIMARY)["functions"]["health"],
                             ZipFile=zip_of(source))
    row = run_failing(fresh_cloud, tmp_path, PRIMARY)
    assert row["failure_category"] == "fault_not_effective"
    assert "still answers 200" in row["error"]


def test_failover_record_without_health_check_never_shifts(fresh_cloud: LocalCloud, tmp_path: Path) -> None:
    r53 = client(fresh_cloud, "route53")
    zone = description(fresh_cloud)["hosted_zone_id"]
    records = r53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    primary = next(r for r in records if r.get("Failover") == "PRIMARY")
    primary.pop("HealthCheckId")
    r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={
        "Changes": [{"Action": "UPSERT", "ResourceRecordSet": primary}]})
    row = run_failing(fresh_cloud, tmp_path, PRIMARY)
    assert row["failure_category"] == "no_dns_shift"


def test_replication_off_loses_the_item_in_the_restored_region(fresh_cloud: LocalCloud, tmp_path: Path) -> None:
    fresh_cloud.control("/replication/drop", {"region": PRIMARY})
    row = run_failing(fresh_cloud, tmp_path, PRIMARY)
    assert row["failure_category"] == "lost_writes"
    assert PRIMARY in row["error"]


def test_surviving_region_put_failing(fresh_cloud: LocalCloud, tmp_path: Path) -> None:
    survivor = region_of(fresh_cloud, SECONDARY)
    client(fresh_cloud, "lambda", SECONDARY).put_function_concurrency(
        FunctionName=survivor["functions"]["put"], ReservedConcurrentExecutions=0)
    row = run_failing(fresh_cloud, tmp_path, PRIMARY)
    assert row["failure_category"] == "write_failed"
    assert "500" in row["error"]


def test_write_that_lands_in_the_failed_region(fresh_cloud: LocalCloud, tmp_path: Path) -> None:
    # The survivor's POST /item is wired to the failed region's PutItem (a cross-region
    # integration): the survivor answers, but the item is written in the failed region.
    survivor = region_of(fresh_cloud, SECONDARY)
    failed = region_of(fresh_cloud, PRIMARY)
    apigw = client(fresh_cloud, "apigateway", SECONDARY)
    resources = apigw.get_resources(restApiId=survivor["api_id"])["items"]
    item = next(r for r in resources if r["path"] == "/item")
    put_arn = client(fresh_cloud, "lambda", PRIMARY).get_function_configuration(
        FunctionName=failed["functions"]["put"])["FunctionArn"]
    apigw.put_integration(restApiId=survivor["api_id"], resourceId=item["id"], httpMethod="POST",
                          type="AWS_PROXY", integrationHttpMethod="POST",
                          uri=f"arn:aws:apigateway:{SECONDARY}:lambda:path/2015-03-31/functions/{put_arn}/invocations")
    row = run_failing(fresh_cloud, tmp_path, PRIMARY)
    assert row["failure_category"] == "wrong_region"
    assert PRIMARY in row["error"]
