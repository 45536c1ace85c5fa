"""provision() in the custom-domain shape (ProvisionSpec.custom_domain: regional-domain.yaml and
routing-alias.yaml) against the local cloud's AWS endpoint: per region an ISSUED ACM certificate
signed by the local CA, a REGIONAL domain name using it, a base path mapping to the stage, and an
alias A record per region to its RegionalDomainName with its health check. Teardown leaves
nothing behind. And a CNAME at the zone apex fails its stack, as on AWS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gameday.localcloud.apigateway import custom_domains
from gameday.localcloud.cloudformation.supplements import CfnSupplements
from gameday.localcloud.process.context import CloudContext
from gameday.localcloud.tls import acm
from gameday.localcloud.tls.ca import LocalCA
from gameday.provision import ProvisionError, ProvisionSpec, provision, teardown
from tests.localcloud.test_provision import client, make_spec, session, world
from tests.localcloud.test_provision import rig as provision_rig

REGIONS = ["eu-west-1", "us-east-1"]
rig = provision_rig   # the same in-process endpoint, data plane and tables, one per module


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory, rig: CloudContext) -> Iterator[LocalCA]:
    local_ca = LocalCA(tmp_path_factory.mktemp("ca"))
    acm.bind(local_ca)
    custom_domains.install()
    yield local_ca


def custom_world(rig: CloudContext, spec: ProvisionSpec) -> dict[str, Any]:
    found = world(rig, spec)
    found["domains"] = sorted((r, d["domainName"]) for r in REGIONS
                              for d in client(rig, "apigateway", r).get_domain_names()["items"])
    found["certificates"] = sorted((r, c["CertificateArn"]) for r in REGIONS
                                   for c in client(rig, "acm", r).list_certificates()["CertificateSummaryList"])
    return found


@pytest.mark.parametrize("routing", ["failover", "latency"])
def test_custom_domain_shape_is_deployed_and_torn_down(rig: CloudContext, ca: LocalCA, routing: str) -> None:
    spec = make_spec(rig, REGIONS, routing=routing, custom_domain=True)
    supplements = CfnSupplements(rig.aws_endpoint_url)
    before = custom_world(rig, spec)
    description = provision(spec, session, supplements)
    try:
        r53 = client(rig, "route53", "us-east-1")
        records = [r for r in r53.list_resource_record_sets(HostedZoneId=description["hosted_zone_id"])
                   ["ResourceRecordSets"] if r["Name"] == spec.domain + "."]
        assert {r["Type"] for r in records} == {"A"} and len(records) == 2
        by_region = {r["SetIdentifier"]: r for r in records}
        for entry in description["regions"]:
            region = entry["name"]
            apigw = client(rig, "apigateway", region)
            domain = apigw.get_domain_name(domainName=spec.domain)
            assert domain["regionalDomainName"] == entry["regional_domain_name"]
            assert domain["regionalDomainName"].endswith(f".execute-api.{region}.amazonaws.com")
            assert domain["endpointConfiguration"]["types"] == ["REGIONAL"]
            mappings = apigw.get_base_path_mappings(domainName=spec.domain)["items"]
            assert [(m["restApiId"], m["stage"]) for m in mappings] == [(entry["api_id"], "prod")]
            certificate = client(rig, "acm", region).describe_certificate(
                CertificateArn=domain["regionalCertificateArn"])["Certificate"]
            assert certificate["Status"] == "ISSUED" and certificate["DomainName"] == spec.domain
            assert f":acm:{region}:" in certificate["CertificateArn"]
            record = by_region[region]
            assert record["AliasTarget"]["DNSName"].rstrip(".") == entry["regional_domain_name"]
            assert record["AliasTarget"]["EvaluateTargetHealth"] is True
            assert record["HealthCheckId"] == entry["health_check_id"]
            if routing == "failover":
                assert record["Failover"] == entry["failover_role"]
            else:
                assert record["Region"] == region and "Failover" not in record
            check = r53.get_health_check(HealthCheckId=entry["health_check_id"])["HealthCheck"]["HealthCheckConfig"]
            assert check["FullyQualifiedDomainName"] == entry["api_host"]
            assert check["ResourcePath"] == "/prod/health"
    finally:
        teardown(spec, session, supplements.deleted)
    assert custom_world(rig, spec) == before


def test_cname_records_to_the_regional_domain_names_carry_their_own_ttl(rig: CloudContext, ca: LocalCA) -> None:
    spec = make_spec(rig, REGIONS, custom_domain=True, record_type="cname", record_ttl_s=3600)
    supplements = CfnSupplements(rig.aws_endpoint_url)
    before = custom_world(rig, spec)
    description = provision(spec, session, supplements)
    try:
        assert description["record_ttl_s"] == 3600
        r53 = client(rig, "route53", "us-east-1")
        records = {r["SetIdentifier"]: r for r in r53.list_resource_record_sets(
            HostedZoneId=description["hosted_zone_id"])["ResourceRecordSets"] if r["Name"] == spec.domain + "."}
        assert len(records) == 2
        for entry in description["regions"]:
            record = records[entry["name"]]
            assert (record["Type"], record["TTL"]) == ("CNAME", 3600) and "AliasTarget" not in record
            assert record["ResourceRecords"] == [{"Value": entry["regional_domain_name"]}]
            assert record["HealthCheckId"] == entry["health_check_id"]
    finally:
        teardown(spec, session, supplements.deleted)
    assert custom_world(rig, spec) == before


def test_a_cname_at_the_zone_apex_fails_its_stack(rig: CloudContext, ca: LocalCA) -> None:
    spec = make_spec(rig, REGIONS)
    spec.domain = spec.zone          # the old CNAME routing template, at the apex
    supplements = CfnSupplements(rig.aws_endpoint_url)
    try:
        with pytest.raises(ProvisionError, match="not permitted at apex"):
            provision(spec, session, supplements)
    finally:
        teardown(spec, session, supplements.deleted)


def test_the_ca_bundle_is_in_its_folder(ca: LocalCA) -> None:
    assert Path(ca.bundle_path).read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert (Path(ca.directory) / "ca-key.pem").stat().st_mode & 0o077 == 0
