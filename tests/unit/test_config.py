"""The deployment description: a good file loads; every class of bad input is a one-line
UsageError naming the field path and what was expected."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from gameday.deployment import Deployment, failover_pairs, load_deployment, parse_deployment
from gameday.errors import UsageError

GOOD: dict[str, Any] = {
    "gameday_deployment": 1,
    "target": "local",
    "aws_endpoint_url": "http://127.0.0.1:45123",
    "control_url": "http://127.0.0.1:45123/_gameday",
    "time_scale": 0.01,
    "domain": "api.gameday.test",
    "global_url": "http://api.gameday.test:8080",
    "dns_resolver": "127.0.0.1:45353",
    "hosted_zone_id": "Z0EXAMPLE",
    "routing": "failover",
    "record_ttl_s": 60,
    "table": {"name": "MyGlobalTable", "version": "2017.11.29", "region_attribute": "aws:rep:updateregion"},
    "regions": [
        {"name": "eu-west-1", "api_url": "http://127.0.0.11:8080/prod", "client_address": "127.0.0.11",
         "functions": {"put": "gameday-PutItem", "get": "gameday-GetItem", "health": "gameday-Health"},
         "health_check_id": "6c9a-1", "failover_role": "PRIMARY",
         "api_host": "abc123.execute-api.eu-west-1.amazonaws.com", "api_id": "abc123"},
        {"name": "us-east-1", "api_url": "http://127.0.0.12:8080/prod", "client_address": "127.0.0.12",
         "functions": {"put": "gameday-PutItem", "get": "gameday-GetItem", "health": "gameday-Health"},
         "health_check_id": "6c9a-2", "failover_role": "SECONDARY"},
    ],
    "slo": {},
}


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "deployment.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def mutated(change) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    change(data)
    return data


def error_of(tmp_path: Path, data: Any) -> str:
    with pytest.raises(UsageError) as info:
        load_deployment(write(tmp_path, data))
    message = str(info.value)
    assert "\n" not in message, "errors are one line"
    assert info.value.exit_code == 2
    return message


def test_good_file_loads(tmp_path: Path) -> None:
    dep = load_deployment(write(tmp_path, GOOD))
    assert isinstance(dep, Deployment)
    assert dep.region_names == ["eu-west-1", "us-east-1"]
    assert dep.region("us-east-1").failover_role == "SECONDARY"
    assert dep.region("eu-west-1").health_url == "http://127.0.0.11:8080/prod/health"
    assert dep.table.region_attribute == "aws:rep:updateregion"
    assert dep.time_scale == 0.01
    assert dep.resolver_address == ("127.0.0.1", 45353)
    assert dep.slo.detection_s is None
    assert [r.name for r in dep.others("eu-west-1")] == ["us-east-1"]
    assert dep.regions[0].api_host == "abc123.execute-api.eu-west-1.amazonaws.com"
    assert dep.regions[0].api_url_host == "127.0.0.11" and dep.regions[1].api_host is None


def test_aws_style_file_uses_defaults(tmp_path: Path) -> None:
    def aws(d: dict[str, Any]) -> None:
        for key in ("aws_endpoint_url", "control_url", "time_scale", "dns_resolver", "record_ttl_s", "slo"):
            d.pop(key)
        d["target"] = "aws"
        d["table"] = {"name": "T", "version": "2019.11.21"}
        d["routing"] = "latency"
        for r in d["regions"]:
            r.pop("failover_role")
            r.pop("functions")
            r["api_url"] = "https://abc.execute-api.eu-west-1.amazonaws.com/prod"
        d["regions"][1]["name"] = "us-west-2"
        d["slo"] = {"detection_s": 60, "dns_shift_s": 120.5}
    dep = load_deployment(write(tmp_path, mutated(aws)))
    assert dep.time_scale == 1.0 and dep.dns_resolver == "system" and dep.resolver_address is None
    assert dep.aws_endpoint_url is None
    assert dep.table.region_attribute == "written_region"
    assert dep.regions[0].functions.health == "gameday-Health"
    assert dep.slo.detection_s == 60.0 and dep.slo.dns_shift_s == 120.5


BAD_CASES = [
    # (id, mutation, text that must appear in the message)
    ("missing-target", lambda d: d.pop("target"), "target: required key is missing"),
    ("missing-regions", lambda d: d.pop("regions"), "regions: required key is missing"),
    ("missing-health-check", lambda d: d["regions"][1].pop("health_check_id"),
     "regions[1].health_check_id: required key is missing"),
    ("missing-table-name", lambda d: d["table"].pop("name"), "table.name: required key is missing"),
    ("missing-table-version", lambda d: d["table"].pop("version"), "table.version: required key is missing"),
    ("schema-version", lambda d: d.update(gameday_deployment=2), "gameday_deployment: expected 1"),
    ("target-choice", lambda d: d.update(target="gcp"), "target: expected one of local, aws"),
    ("time-scale-zero", lambda d: d.update(time_scale=0), "time_scale: expected a number in (0, 1]"),
    ("time-scale-big", lambda d: d.update(time_scale=1.5), "time_scale: expected a number in (0, 1]"),
    ("time-scale-type", lambda d: d.update(time_scale="fast"), "time_scale: expected a number in (0, 1]"),
    ("time-scale-bool", lambda d: d.update(time_scale=True), "time_scale: expected a number in (0, 1]"),
    ("routing-choice", lambda d: d.update(routing="weighted"), "routing: expected one of failover, latency"),
    ("failover-three-regions", lambda d: d["regions"].append(dict(copy.deepcopy(d["regions"][1]), name="us-west-2")),
     "regions: failover routing takes exactly 2 regions; use latency"),
    ("failover-missing-role", lambda d: d["regions"][0].pop("failover_role"),
     "regions[0].failover_role: required key is missing"),
    ("failover-bad-role", lambda d: d["regions"][0].update(failover_role="MAIN"),
     "regions[0].failover_role: expected one of PRIMARY, SECONDARY"),
    ("failover-two-primaries", lambda d: d["regions"][1].update(failover_role="PRIMARY"),
     "one PRIMARY and one SECONDARY"),
    ("latency-with-role", lambda d: d.update(routing="latency"), "regions[0].failover_role: expected no failover_role"),
    ("table-version", lambda d: d["table"].update(version="2020.01.01"),
     "table.version: expected one of 2017.11.29, 2019.11.21"),
    ("table-version-float", lambda d: d["table"].update(version=2019.11),
     "table.version: expected one of 2017.11.29, 2019.11.21"),
    ("table-2019-with-aws-rep", lambda d: d["table"].update(version="2019.11.21"),
     "table.region_attribute: expected an attribute the writing handler stamps"),
    ("table-not-mapping", lambda d: d.update(table="MyGlobalTable"), "table: expected a mapping"),
    ("resolver-bad", lambda d: d.update(dns_resolver="localhost"), 'dns_resolver: expected "system" or host:port'),
    ("resolver-bad-port", lambda d: d.update(dns_resolver="127.0.0.1:99999"), "dns_resolver: expected"),
    ("resolver-type", lambda d: d.update(dns_resolver=53), "dns_resolver: expected a non-empty string"),
    ("url-scheme", lambda d: d["regions"][0].update(api_url="ftp://x/prod"), "regions[0].api_url: expected an http(s) URL"),
    ("url-no-host", lambda d: d.update(global_url="http://"), "global_url: expected an http(s) URL"),
    ("url-bad-port", lambda d: d.update(aws_endpoint_url="http://127.0.0.1:notaport"),
     "aws_endpoint_url: expected an http(s) URL"),
    ("duplicate-region", lambda d: d["regions"][1].update(name="eu-west-1"),
     "regions[1].name: expected a region name not used before"),
    ("region-name", lambda d: d["regions"][1].update(name="Europe"), "regions[1].name: expected an AWS region name"),
    ("region-unknown", lambda d: d["regions"][1].update(name="xx-fake-9"),
     "regions[1].name: expected an AWS region name like eu-west-1 (one botocore knows), got 'xx-fake-9'"),
    ("lease-region-unknown", lambda d: d.update(lease={"table": "leases", "region": "eu-fake-1"}),
     "lease.region: expected an AWS region name like eu-west-1 (one botocore knows), got 'eu-fake-1'"),
    ("region-not-mapping", lambda d: d["regions"].__setitem__(1, "us-east-1"), "regions[1]: expected a mapping"),
    ("regions-not-list", lambda d: d.update(regions={"eu-west-1": {}}), "regions: expected a list"),
    ("one-region", lambda d: (d.update(routing="latency"), d["regions"].pop(), d["regions"][0].pop("failover_role")),
     "regions: expected at least 2 regions"),
    ("api-host", lambda d: d["regions"][0].update(api_host="not a host"),
     "regions[0].api_host: expected a DNS name"),
    ("client-address", lambda d: d["regions"][0].update(client_address="not-an-ip"),
     "regions[0].client_address: expected an IP address"),
    ("functions-missing-health", lambda d: d["regions"][0]["functions"].pop("health"),
     "regions[0].functions.health: required key is missing"),
    ("function-name-type", lambda d: d["regions"][0]["functions"].update(put=3),
     "regions[0].functions.put: expected a non-empty string"),
    ("hosted-zone-empty", lambda d: d.update(hosted_zone_id=""), "hosted_zone_id: expected a non-empty string"),
    ("domain", lambda d: d.update(domain="not a domain"), "domain: expected a DNS name"),
    ("ttl", lambda d: d.update(record_ttl_s=-1), "record_ttl_s: expected an integer >= 0"),
    ("unknown-top-key", lambda d: d.update(time_scal=0.5), "time_scal: unknown key"),
    ("unknown-region-key", lambda d: d["regions"][0].update(healthcheck="x"), "regions[0].healthcheck: unknown key"),
    ("slo-type", lambda d: d.update(slo={"detection_s": "fast"}), "slo.detection_s: expected a number >= 0"),
    ("slo-negative", lambda d: d.update(slo={"failback_s": -3}), "slo.failback_s: expected a number >= 0"),
    ("slo-unknown", lambda d: d.update(slo={"detection": 3}), "slo.detection: unknown key"),
]


@pytest.mark.parametrize("mutation,expected", [(m, e) for _, m, e in BAD_CASES], ids=[c[0] for c in BAD_CASES])
def test_bad_field_is_named(tmp_path: Path, mutation, expected: str) -> None:
    message = error_of(tmp_path, mutated(mutation))
    assert expected in message, message
    assert str(tmp_path / "deployment.yaml") in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"deployment file .*nope.yaml: not found"):
        load_deployment(tmp_path / "nope.yaml")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="expected a file, got a directory"):
        load_deployment(tmp_path)


def test_not_yaml(tmp_path: Path) -> None:
    message = error_of(tmp_path, "regions: [unclosed\ntarget: local\n")
    assert "not valid YAML at line" in message


def test_yaml_but_not_a_mapping(tmp_path: Path) -> None:
    message = error_of(tmp_path, "- just\n- a list\n")
    assert "(top level): expected a mapping" in message


def test_empty_file(tmp_path: Path) -> None:
    assert "(top level): expected a mapping" in error_of(tmp_path, "")


def test_parse_deployment_from_dict() -> None:
    dep = parse_deployment(copy.deepcopy(GOOD), source="inline")
    assert dep.source == "inline"
    public = dep.public()
    assert public["regions"][0]["name"] == "eu-west-1" and "source" not in public


def test_unknown_region_lookup_is_a_usage_error() -> None:
    dep = parse_deployment(copy.deepcopy(GOOD))
    with pytest.raises(UsageError, match="region: expected one of eu-west-1, us-east-1, got 'mars-1'"):
        dep.region("mars-1")


def pairs_description(partners: dict[str, str]) -> dict[str, Any]:
    """GOOD with a third region, routed by failover_pairs with these partners."""
    data = copy.deepcopy(GOOD)
    data["routing"] = "failover_pairs"
    data["regions"].append(dict(copy.deepcopy(data["regions"][1]), name="ap-southeast-1", health_check_id="6c9a-3",
                                api_url="http://127.0.0.13:8080/prod", client_address="127.0.0.13"))
    for region in data["regions"]:
        region.pop("failover_role", None)
        if region["name"] in partners:
            region["failover_partner"] = partners[region["name"]]
    return data


PARTNERS = {"eu-west-1": "us-east-1", "us-east-1": "eu-west-1", "ap-southeast-1": "us-east-1"}


def test_failover_pairs_name_each_regions_partner_and_its_expected_survivor(tmp_path: Path) -> None:
    dep = load_deployment(write(tmp_path, pairs_description(PARTNERS)))
    assert dep.routing == "failover_pairs" and dep.routes_by_client
    assert {r.name: dep.expected_survivor(r.name) for r in dep.regions} == PARTNERS
    two = load_deployment(write(tmp_path, GOOD))
    assert two.expected_survivor("eu-west-1") == "us-east-1" and two.expected_survivor("us-east-1") is None
    assert not two.routes_by_client


@pytest.mark.parametrize("change, expected", [
    (lambda d: d["regions"][2].pop("failover_partner"), "regions[2].failover_partner: required key is missing"),
    (lambda d: d["regions"][2].update(failover_partner="ap-southeast-1"),
     "regions[2].failover_partner: expected another region of this deployment"),
    (lambda d: d["regions"][0].update(failover_partner="sa-east-1"),
     "regions[0].failover_partner: expected another region of this deployment"),
    (lambda d: d["regions"][0].update(failover_role="PRIMARY"),
     "regions[0].failover_role: expected no failover_role with routing failover_pairs"),
    (lambda d: d.update(routing="latency"), "regions[0].failover_partner: expected no failover_partner with routing "
                                            "latency"),
])
def test_bad_failover_pairs_are_named(tmp_path: Path, change, expected: str) -> None:
    data = pairs_description(PARTNERS)
    change(data)
    assert expected in error_of(tmp_path, data)


@pytest.mark.parametrize("text, expected", [
    ("eu-west-1:us-east-1,us-east-1:eu-west-1", "--pairs: no partner for ap-southeast-1"),
    ("eu-west-1-us-east-1", "--pairs: expected REGION:PARTNER pairs separated by commas"),
    ("eu-west-1:eu-west-1", "--pairs: eu-west-1 cannot be its own partner"),
    ("eu-west-1:us-east-1,eu-west-1:ap-southeast-1", "--pairs: eu-west-1 is paired twice"),
    ("eu-west-1:sa-east-1", "--pairs: partner 'sa-east-1' of eu-west-1 is not one of the regions"),
    ("sa-east-1:eu-west-1", "--pairs: 'sa-east-1' is not one of the regions"),
])
def test_bad_pairs_text_is_one_line_naming_the_option(text: str, expected: str) -> None:
    with pytest.raises(UsageError) as info:
        failover_pairs(text, ["eu-west-1", "us-east-1", "ap-southeast-1"])
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_pairs_default_to_the_next_region() -> None:
    assert failover_pairs(None, ["a-1", "b-1", "c-1"]) == {"a-1": "b-1", "b-1": "c-1", "c-1": "a-1"}
    assert failover_pairs(" a-1:c-1 , b-1:a-1,c-1:a-1", ["a-1", "b-1", "c-1"]) == {"a-1": "c-1", "b-1": "a-1",
                                                                                    "c-1": "a-1"}
