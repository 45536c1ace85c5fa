"""`gameday discover` writes the description the local cloud wrote, from the AWS APIs alone, in
every shape (CNAME records to execute-api hosts, alias A records to regional custom domains, and
latency records aliasing a failover pair per region),
and a run on it passes; a record without a health check, or two APIs behind one path, exit 2
naming the problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gameday.localcloud.process.launcher import LocalCloud
from tests.e2e.test_broken_deployments import client, description
from tests.support.run_helpers import gameday

DOMAIN = "api.gameday.test"
REGION_FIELDS = ("name", "api_host", "api_id", "functions", "health_check_id", "failover_role",
                 "regional_domain_name", "failover_partner")
#: three regions failing over between chosen pairs (latency records aliasing each region's pair)
PAIRS = {"regions": ["eu-west-1", "us-east-1", "ap-southeast-1"], "routing": "failover_pairs",
         "pairs": "eu-west-1:ap-southeast-1,us-east-1:eu-west-1,ap-southeast-1:eu-west-1", "time_scale": 0.02}
TOP_FIELDS = ("target", "aws_endpoint_url", "domain", "global_url", "hosted_zone_id", "routing", "record_ttl_s",
              "table", "time_scale", "dns_resolver", "ca_bundle")


def discover(cloud: LocalCloud, out: Path | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "gameday.cli.main", "discover", "--domain", DOMAIN,
            "--endpoint-url", cloud.aws_endpoint_url]
    if out is not None:
        argv += ["--out", str(out)]
    return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=120)


def fields(data: dict[str, Any]) -> dict[str, Any]:
    return {**{k: data.get(k) for k in TOP_FIELDS},
            "regions": sorted(({k: r.get(k) for k in REGION_FIELDS} for r in data["regions"]),
                              key=lambda r: r["name"])}


@pytest.mark.parametrize("layout", [{"tls": False}, {"tls": True}, {"tls": True, **PAIRS}],
                         ids=["cname", "alias-tls", "failover-pairs"])
def test_discover_writes_the_clouds_description_and_a_run_on_it_passes(tmp_path: Path,
                                                                      layout: dict[str, Any]) -> None:
    with LocalCloud(**layout) as cloud:
        out = tmp_path / "discovered.yaml"
        proc = discover(cloud, out)
        assert proc.returncode == 0, proc.stderr
        assert "found: table MyGlobalTable: 2017.11.29" in proc.stdout
        discovered = yaml.safe_load(out.read_text())
        assert fields(discovered) == fields(description(cloud))
        result = gameday("run", "--deployment", str(out), "-k", "region_failover", "--fail-region", "eu-west-1",
                         "--report-dir", str(tmp_path), "--no-html", report_dir=tmp_path)
        assert result.code == 0, result.stdout[-3000:]
        assert [row["verdict"] for row in result.rows()] == ["pass"]


def test_a_record_without_its_health_check_exits_2_naming_it(tmp_path: Path) -> None:
    with LocalCloud() as cloud:
        r53 = client(cloud, "route53")
        zone = description(cloud)["hosted_zone_id"]
        records = r53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
        secondary = next(r for r in records if r.get("Failover") == "SECONDARY")
        bare = {k: v for k, v in secondary.items() if k != "HealthCheckId"}
        r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [
            {"Action": "UPSERT", "ResourceRecordSet": bare}]})
        assert "HealthCheckId" not in next(r for r in r53.list_resource_record_sets(HostedZoneId=zone)[
            "ResourceRecordSets"] if r.get("Failover") == "SECONDARY")
        proc = discover(cloud, tmp_path / "never.yaml")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"record {DOMAIN} ({secondary['Type']}, {secondary['SetIdentifier']}): no health check" in proc.stderr, \
        proc.stderr
    assert not (tmp_path / "never.yaml").exists()


def test_two_apis_behind_one_path_exit_2_naming_both(tmp_path: Path) -> None:
    with LocalCloud(tls=True) as cloud:
        region = "eu-west-1"
        apigw = client(cloud, "apigateway", region)
        other = apigw.create_rest_api(name="someone-elses-api")["id"]
        root = apigw.get_resources(restApiId=other)["items"][0]["id"]
        apigw.put_method(restApiId=other, resourceId=root, httpMethod="GET", authorizationType="NONE")
        apigw.put_integration(restApiId=other, resourceId=root, httpMethod="GET", type="MOCK")
        apigw.create_deployment(restApiId=other, stageName="prod")
        apigw.create_base_path_mapping(domainName=DOMAIN, restApiId=other, stage="prod", basePath="item")
        proc = discover(cloud)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"two APIs behind {DOMAIN} in {region}" in proc.stderr and other in proc.stderr, proc.stderr
