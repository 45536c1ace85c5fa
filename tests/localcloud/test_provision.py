"""Provisioning through the CloudFormation API against the local AWS endpoint (moto server over
HTTP), with the local cloud's supplements as hooks and its global tables installed, checked
resource by resource with boto3 over HTTP."""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from gameday.errors import UsageError
from gameday.localcloud.cloudformation.supplements import CfnSupplements
from gameday.localcloud.process.context import CloudContext
from gameday.provision import INFRA_DIR, ProvisionError, ProvisionSpec, known_regions, provision, teardown
from tests.support.cloud_rigs import provisioning_rig

# The runtime the reference template gives its functions (one for all three).
TEMPLATE_RUNTIME = re.findall(r"^\s*Runtime:\s*(\S+)", (INFRA_DIR / "regional.yaml").read_text(), re.MULTILINE)[0]

REGIONS_3 = ["eu-west-1", "us-east-1", "ap-southeast-1"]
DESCRIPTION_KEYS = {"gameday_deployment", "target", "aws_endpoint_url", "time_scale", "domain", "global_url",
                    "dns_resolver", "hosted_zone_id", "routing", "record_ttl_s", "table", "regions"}


_SESSION = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
_CLIENTS: dict[tuple[str, str, str], Any] = {}


def session(region: str) -> Any:
    """The session factory given to provision(): one session, so service models load once."""
    return _SESSION


def no_aws(region: str) -> Any:
    raise AssertionError(f"an AWS client was requested for {region} although the input is bad")


@pytest.fixture(scope="module")
def rig() -> Iterator[CloudContext]:
    with provisioning_rig(REGIONS_3) as ctx:
        yield ctx


def make_spec(rig: CloudContext, regions: list[str], **overrides: Any) -> ProvisionSpec:
    """Unique names per test, so tests sharing one endpoint never collide."""
    tag = uuid.uuid4().hex[:8]
    fields: dict[str, Any] = dict(
        regions=regions, table_name=f"Table{tag}", domain=f"api.z{tag}.test", zone=f"z{tag}.test",
        stack_prefix=f"t{tag}", function_prefix=f"f{tag}", check_type="HTTP", check_port=rig.data_plane_port,
        region_addresses={r: rig.region(r).address for r in regions if r in REGIONS_3}, data_plane_port=rig.data_plane_port,
        aws_endpoint_url=rig.aws_endpoint_url, time_scale=0.01, poll_interval_s=0.02, stack_timeout_s=30)
    fields.update(overrides)
    return ProvisionSpec(**fields)


def client(rig: CloudContext, service: str, region: str) -> Any:
    key = (service, region, rig.aws_endpoint_url)
    if key not in _CLIENTS:
        _CLIENTS[key] = _SESSION.client(service, region_name=region, endpoint_url=rig.aws_endpoint_url)
    return _CLIENTS[key]


def world(rig: CloudContext, spec: ProvisionSpec) -> dict[str, Any]:
    """Everything a provisioning could have left, for before/after comparisons."""
    r53 = client(rig, "route53", "us-east-1")
    regions = (set(spec.regions) & known_regions()) | {"us-east-1"}
    return {
        "stacks": sorted((r, s["StackName"]) for r in regions
                         for s in client(rig, "cloudformation", r).list_stacks()["StackSummaries"]
                         if s["StackStatus"] != "DELETE_COMPLETE"),
        "functions": sorted((r, f["FunctionName"]) for r in regions
                            for f in client(rig, "lambda", r).list_functions()["Functions"]),
        "tables": sorted((r, t) for r in regions for t in client(rig, "dynamodb", r).list_tables()["TableNames"]),
        "apis": sorted((r, a["id"]) for r in regions for a in client(rig, "apigateway", r).get_rest_apis()["items"]),
        "zones": sorted(z["Id"] for z in r53.list_hosted_zones()["HostedZones"]),
        "checks": sorted(h["Id"] for h in r53.list_health_checks()["HealthChecks"]),
        "buckets": sorted(b["Name"] for b in client(rig, "s3", "us-east-1").list_buckets()["Buckets"]),
    }


def assert_region_deployed(rig: CloudContext, spec: ProvisionSpec, entry: dict[str, Any]) -> None:
    region = entry["name"]
    lam = client(rig, "lambda", region)
    expected = {"put": ("put_item.handler", {"tableName": spec.table_name}),
                "get": ("get_item.handler", {"tableName": spec.table_name}),
                "health": ("health.handler", {"status": "200", "HEALTH_DEPTH": spec.health_depth,
                                              "HEALTH_MAX_AGE_S": f"{spec.health_max_age_s:g}",
                                              "tableName": spec.table_name})}
    for role, (handler, env) in expected.items():
        name = entry["functions"][role]
        assert name == f"{spec.function_prefix}-{ {'put': 'PutItem', 'get': 'GetItem', 'health': 'Health'}[role] }"
        config = lam.get_function_configuration(FunctionName=name)
        assert (config["Runtime"], config["Handler"]) == (TEMPLATE_RUNTIME, handler)
        assert config["Environment"]["Variables"] == env   # strings, as CloudFormation passes them
        assert config["CodeSize"] > 0

    apigw = client(rig, "apigateway", region)
    api_id = entry["api_id"]
    assert entry["api_host"] == f"{api_id}.execute-api.{region}.amazonaws.com"
    methods = {r["path"]: sorted(r.get("resourceMethods", {})) for r in apigw.get_resources(restApiId=api_id)["items"]}
    assert methods == {"/": [], "/item": ["POST"], "/item/{itemId}": ["GET"], "/health": ["GET"]}
    by_path = {r["path"]: r["id"] for r in apigw.get_resources(restApiId=api_id)["items"]}
    for path, verb, role in (("/item", "POST", "put"), ("/item/{itemId}", "GET", "get"), ("/health", "GET", "health")):
        integration = apigw.get_integration(restApiId=api_id, resourceId=by_path[path], httpMethod=verb)
        assert integration["type"] == "AWS_PROXY"
        assert f":function:{entry['functions'][role]}/invocations" in integration["uri"]
    stages = apigw.get_stages(restApiId=api_id)["item"]
    assert [s["stageName"] for s in stages] == ["prod"]
    deployment_ids = {d["id"] for d in apigw.get_deployments(restApiId=api_id)["items"]}
    assert stages[0]["deploymentId"] in deployment_ids

    table = client(rig, "dynamodb", region).describe_table(TableName=spec.table_name)["Table"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]

    assert entry["api_url"] == f"http://{rig.region(region).address}:{rig.data_plane_port}/prod"
    assert entry["client_address"] == rig.region(region).address


def assert_routing(rig: CloudContext, spec: ProvisionSpec, description: dict[str, Any]) -> None:
    r53 = client(rig, "route53", "us-east-1")
    for entry in description["regions"]:
        check = r53.get_health_check(HealthCheckId=entry["health_check_id"])["HealthCheck"]["HealthCheckConfig"]
        assert (check["Type"], check["Port"], check["FullyQualifiedDomainName"], check["ResourcePath"],
                check["RequestInterval"], check["FailureThreshold"]) == \
            ("HTTP", rig.data_plane_port, entry["api_host"], "/prod/health", spec.request_interval, spec.failure_threshold)
        tags = r53.list_tags_for_resource(ResourceType="healthcheck", ResourceId=entry["health_check_id"])
        assert {"Key": "Name", "Value": f"gameday-health-{entry['name']}"} in tags["ResourceTagSet"]["Tags"]
    zone = r53.get_hosted_zone(Id=description["hosted_zone_id"])["HostedZone"]
    assert zone["Name"] == spec.zone + "."
    records = [r for r in r53.list_resource_record_sets(HostedZoneId=description["hosted_zone_id"])["ResourceRecordSets"]
               if r["Type"] == "CNAME"]
    assert len(records) == len(spec.regions)
    for entry, record in zip(description["regions"], sorted(records, key=lambda r: spec.regions.index(r["SetIdentifier"])),
                             strict=True):
        assert record["Name"] == spec.domain + "."
        assert record["SetIdentifier"] == entry["name"]
        assert record["TTL"] == spec.record_ttl_s
        assert record["ResourceRecords"] == [{"Value": entry["api_host"]}]
        assert record["HealthCheckId"] == entry["health_check_id"]
        if spec.routing == "failover":
            assert record["Failover"] == entry["failover_role"]
            assert "Region" not in record
        else:
            assert record["Region"] == entry["name"]
            assert "Failover" not in record and "failover_role" not in entry
    if spec.routing == "failover":
        assert [e["failover_role"] for e in description["regions"]] == ["PRIMARY", "SECONDARY"]


def assert_replicates(rig: CloudContext, spec: ProvisionSpec) -> None:
    """A write in the first region shows up in every other region: the global table is live."""
    first, *others = spec.regions
    client(rig, "dynamodb", first).put_item(TableName=spec.table_name, Item={"id": {"N": "1"}, "name": {"S": "x"}})
    for region in others:
        ddb = client(rig, "dynamodb", region)
        for attempt in Retrying(stop=stop_after_delay(5), wait=wait_fixed(0.02), retry=retry_if_exception_type(KeyError),
                                reraise=True):
            with attempt:
                item = ddb.get_item(TableName=spec.table_name, Key={"id": {"N": "1"}})["Item"]
        assert item["name"] == {"S": "x"}
        assert ("aws:rep:updateregion" in item) == (spec.table_version == "2017.11.29")


@pytest.mark.parametrize("version, routing, regions", [
    ("2017.11.29", "failover", REGIONS_3[:2]),
    ("2019.11.21", "failover", REGIONS_3[:2]),
    ("2017.11.29", "latency", REGIONS_3),
    ("2019.11.21", "latency", REGIONS_3),
])
def test_provision_deploys_every_resource_and_describes_it(rig: CloudContext, version: str, routing: str,
                                                          regions: list[str]) -> None:
    spec = make_spec(rig, regions, table_version=version, routing=routing)
    supplements = CfnSupplements(rig.aws_endpoint_url)
    before = world(rig, spec)
    description = provision(spec, session, supplements)
    try:
        assert supplements.pending == []
        assert DESCRIPTION_KEYS <= set(description)
        assert description["table"] == {"name": spec.table_name, "version": version,
                                         "region_attribute": {"2017.11.29": "aws:rep:updateregion",
                                                              "2019.11.21": "written_region"}[version]}
        assert (description["routing"], description["domain"], description["record_ttl_s"]) == \
            (routing, spec.domain, 60)
        assert description["global_url"] == f"http://{spec.domain}:{rig.data_plane_port}"
        assert [e["name"] for e in description["regions"]] == regions
        for entry in description["regions"]:
            assert_region_deployed(rig, spec, entry)
        if version == "2017.11.29":
            group = client(rig, "dynamodb", regions[0]).describe_global_table(GlobalTableName=spec.table_name)
            assert sorted(r["RegionName"] for r in group["GlobalTableDescription"]["ReplicationGroup"]) == sorted(regions)
        assert_routing(rig, spec, description)
        assert_replicates(rig, spec)
    finally:
        teardown(spec, session, supplements.deleted)
    assert world(rig, spec) == before


@pytest.mark.parametrize("version", ["2017.11.29", "2019.11.21"])
def test_the_deployed_handlers_serve_through_the_data_plane(rig: CloudContext, version: str) -> None:
    """End to end: a write through one region's API is read back through the other's, stamped."""
    spec = make_spec(rig, REGIONS_3[:2], table_version=version)
    supplements = CfnSupplements(rig.aws_endpoint_url)
    description = provision(spec, session, supplements)
    try:
        first, second = description["regions"]
        # Address each region's API by its host name, as clients of execute-api do: other tests in
        # this worker may have left REST APIs with a `prod` stage in the same (process-wide) moto.
        to_first, to_second = {"Host": first["api_host"]}, {"Host": second["api_host"]}
        put = requests.post(f"{first['api_url']}/item", json={"id": 7, "name": "postman7"}, headers=to_first,
                            timeout=10)
        assert (put.status_code, put.json()) == (200, {})    # like the article's: nothing names the region
        assert "x-gameday-region" not in put.headers
        bad = requests.post(f"{first['api_url']}/item", json={"id": "7", "name": "x"}, headers=to_first,
                            timeout=10)
        assert bad.status_code == 400 and bad.json()["error"].startswith("id:")
        for attempt in Retrying(stop=stop_after_delay(5), wait=wait_fixed(0.02),
                                retry=retry_if_exception_type(AssertionError), reraise=True):
            with attempt:
                got = requests.get(f"{second['api_url']}/item/7", headers=to_second, timeout=10)
                assert got.status_code == 200, got.text
        item = got.json()
        assert item[description["table"]["region_attribute"]] == first["name"]
        assert requests.get(f"{second['api_url']}/item/8", headers=to_second, timeout=10).status_code == 404
        health = requests.get(f"{second['api_url']}/health", headers=to_second, timeout=10)
        assert (health.status_code, health.json()) == (200, "all done")
    finally:
        teardown(spec, session, supplements.deleted)


def test_deleting_one_routing_stack_keeps_the_other_regions_record(rig: CloudContext) -> None:
    spec = make_spec(rig, REGIONS_3[:2], table_version="2019.11.21")
    supplements = CfnSupplements(rig.aws_endpoint_url)
    description = provision(spec, session, supplements)
    try:
        client(rig, "cloudformation", "us-east-1").delete_stack(StackName=f"{spec.stack_prefix}-routing-eu-west-1")
        records = client(rig, "route53", "us-east-1").list_resource_record_sets(
            HostedZoneId=description["hosted_zone_id"])["ResourceRecordSets"]
        assert [r["SetIdentifier"] for r in records if r["Type"] == "CNAME"] == ["us-east-1"]
    finally:
        teardown(spec, session, supplements.deleted)


def copy_templates(tmp_path: Path) -> Path:
    target = tmp_path / "templates"
    target.mkdir()
    for name in ("regional.yaml", "global-table.yaml", "routing.yaml", "zone.yaml"):
        shutil.copy(INFRA_DIR / name, target / name)
    return target


def test_user_templates_get_the_health_check_settings_moto_drops(rig: CloudContext, tmp_path: Path) -> None:
    templates = copy_templates(tmp_path)
    routing = (templates / "routing.yaml").read_text().replace(
        "        EnableSNI: !If [IsHttps, true, false]",
        "        EnableSNI: !If [IsHttps, true, false]\n        Inverted: true\n        Disabled: false\n"
        "        Regions: [us-east-1, eu-west-1, ap-southeast-1]")
    (templates / "routing.yaml").write_text(routing)
    spec = make_spec(rig, REGIONS_3[:2], table_version="2019.11.21", templates_dir=str(templates))
    supplements = CfnSupplements(rig.aws_endpoint_url)
    description = provision(spec, session, supplements)
    try:
        r53 = client(rig, "route53", "us-east-1")
        for entry in description["regions"]:
            config = r53.get_health_check(HealthCheckId=entry["health_check_id"])["HealthCheck"]["HealthCheckConfig"]
            assert (config["Inverted"], config["Disabled"]) == (True, False)
            assert sorted(config["Regions"]) == ["ap-southeast-1", "eu-west-1", "us-east-1"]
    finally:
        teardown(spec, session, supplements.deleted)


def bad_templates(tmp_path: Path, name: str, text: str) -> str:
    templates = copy_templates(tmp_path)
    (templates / name).write_text(text)
    return str(templates)


@pytest.mark.parametrize("overrides, needle", [
    ({"regions": REGIONS_3, "routing": "failover"}, "failover routing takes exactly 2 regions; use latency"),
    ({"regions": ["eu-west-1"], "routing": "latency"}, "regions:"),
    ({"regions": ["eu-west-1", "eu-west-1"]}, "regions: duplicate"),
    ({"regions": ["eu-west-1", "mars-north-1"]}, "unknown region 'mars-north-1'"),
    ({"routing": "weighted"}, "routing: expected one of failover, latency"),
    ({"table_version": "2020.01.01"}, "table_version:"),
    ({"check_type": "TCP"}, "check_type:"),
    ({"check_port": 0}, "check_port:"),
    ({"request_interval": 15}, "request_interval:"),
    ({"failure_threshold": 11}, "failure_threshold:"),
    ({"record_ttl_s": -1}, "record_ttl_s:"),
    ({"record_type": "txt"}, "record_type: expected one of alias, cname, got 'txt'"),
    ({"record_type": "alias"}, "record_type: alias records point at a custom domain's target"),
    ({"custom_domain": True, "record_ttl_s": 3600}, "record_ttl_s: alias records answer with their target's TTL (60 s"),
    ({"domain": "api.elsewhere.test"}, "domain:"),
    ({"table_name": "a b"}, "table_name:"),
    ({"templates_dir": "/nonexistent/templates"}, "templates: /nonexistent/templates is not a directory"),
])
def test_bad_input_is_one_line_naming_it_and_creates_nothing(rig: CloudContext, overrides: dict[str, Any],
                                                             needle: str) -> None:
    fields = dict(overrides)
    spec = make_spec(rig, fields.pop("regions", REGIONS_3[:2]), **fields)
    before = world(rig, spec)
    with pytest.raises(UsageError) as raised:
        provision(spec, no_aws)
    message = str(raised.value)
    assert needle in message and "\n" not in message
    assert world(rig, spec) == before


@pytest.mark.parametrize("name, text, needle", [
    ("routing.yaml", None, "has no routing.yaml"),
    ("regional.yaml", "Resources: {A: {Type: AWS::Lambda::Function\n  - x", "regional.yaml: line"),
    ("zone.yaml", "[1, 2]", "zone.yaml: expected a mapping with a non-empty Resources section"),
    ("zone.yaml", "Resources:\n  Q: {Type: AWS::SQS::Queue}\nOutputs: {HostedZoneId: {Value: x}}",
     "resource Q has unsupported type 'AWS::SQS::Queue'"),
    ("zone.yaml", "Resources:\n  Z: {Type: AWS::Route53::HostedZone, Properties: {Name: a.}}\n",
     "zone.yaml: missing output HostedZoneId"),
    ("global-table.yaml", '{"Resources": {"T": {"Type": "AWS::DynamoDB::Table"}}}',
     "expected exactly one AWS::DynamoDB::GlobalTable resource"),
    ("zone.yaml", "Resources:\n  Z: {Type: AWS::Route53::HostedZone, Properties: {Name: !Ref Nme}}\n"
                  "Outputs: {HostedZoneId: {Value: !Ref Z}}", "Resources.Z: Ref to undeclared 'Nme'"),
    ("zone.yaml", "Resources:\n  Z: {Type: AWS::Route53::HostedZone, Properties: {Name: !Sub '${Zone}.'}}\n"
                  "Outputs: {HostedZoneId: {Value: !GetAtt Zz.Id}}", "Ref to undeclared 'Zone'"),
    ("zone.yaml", "Resources:\n  Z: {Type: AWS::Route53::HostedZone, Condition: Nope, Properties: {Name: a.}}\n"
                  "Outputs: {HostedZoneId: {Value: !Ref Z}}", "Resources.Z: Condition to undeclared 'Nope'"),
])
def test_bad_templates_are_refused_before_any_call(rig: CloudContext, tmp_path: Path, name: str,
                                                   text: str | None, needle: str) -> None:
    if text is None:
        templates = copy_templates(tmp_path)
        (templates / name).unlink()
    else:
        templates = Path(bad_templates(tmp_path, name, text))
    spec = make_spec(rig, REGIONS_3[:2], templates_dir=str(templates))
    before = world(rig, spec)
    with pytest.raises(UsageError) as raised:
        provision(spec, no_aws)
    assert needle in str(raised.value) and "\n" not in str(raised.value)
    assert world(rig, spec) == before


def test_a_failing_stack_is_one_line_naming_the_stack(rig: CloudContext, tmp_path: Path) -> None:
    """moto accepts a function whose code object is missing; AWS fails the stack (the supplement does too)."""
    templates = copy_templates(tmp_path)
    text = (INFRA_DIR / "regional.yaml").read_text().replace(
        "Code: {S3Bucket: !Ref CodeBucket, S3Key: !Ref CodeKey}\n      Environment:\n        Variables:\n          status: \"200\"",
        "Code: {S3Bucket: !Ref CodeBucket, S3Key: no-such-key.zip}\n      Environment:\n        Variables:\n          status: \"200\"")
    assert text != (INFRA_DIR / "regional.yaml").read_text()
    (templates / "regional.yaml").write_text(text)
    spec = make_spec(rig, REGIONS_3[:2], table_version="2019.11.21", templates_dir=str(templates))
    supplements = CfnSupplements(rig.aws_endpoint_url)
    try:
        with pytest.raises(ProvisionError) as raised:
            provision(spec, session, supplements)
        message = str(raised.value)
        assert message.startswith(f"stack {spec.stack_prefix}-regional-eu-west-1 (eu-west-1):"), message
        assert "HealthFunction: Code s3://" in message and "no-such-key.zip does not exist" in message
        assert "\n" not in message
    finally:
        teardown(spec, session, supplements.deleted)


def test_attaching_to_an_existing_zone_creates_no_zone_and_leaves_it(rig: CloudContext) -> None:
    spec = make_spec(rig, REGIONS_3[:2], table_version="2019.11.21")
    r53 = client(rig, "route53", "us-east-1")
    zone_id = r53.create_hosted_zone(Name=spec.zone, CallerReference=spec.stack_prefix)["HostedZone"]["Id"]
    spec.hosted_zone_id = zone_id
    supplements = CfnSupplements(rig.aws_endpoint_url)
    try:
        description = provision(spec, session, supplements)
        assert description["hosted_zone_id"] == zone_id.split("/")[-1]
        assert not any(name.endswith("-zone") for _, name in world(rig, spec)["stacks"])
        records = r53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
        assert sorted(r["SetIdentifier"] for r in records if r["Type"] == "CNAME") == sorted(spec.regions)
    finally:
        teardown(spec, session, supplements.deleted)
        assert zone_id in world(rig, spec)["zones"]
        r53.delete_hosted_zone(Id=zone_id)


def test_teardown_of_nothing_deletes_nothing(rig: CloudContext) -> None:
    spec = make_spec(rig, REGIONS_3[:2])
    assert teardown(spec, session) == []
