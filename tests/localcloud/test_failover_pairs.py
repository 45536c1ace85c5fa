"""Failover between chosen pairs on three regions of the local cloud, provisioned by the reference
templates: per region a failover pair (the region, then its partner) and the domain's latency
record aliasing it with EvaluateTargetHealth. A client of a region is answered by the region, by
its partner while the region is down, and by another region when both are down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gameday.aws import AwsClients
from gameday.deployment import Deployment, load_deployment
from gameday.faults import FlipHealth
from gameday.faults.journal import Journal
from gameday.localcloud.process.launcher import LocalCloud
from gameday.observe import dns_answers
from gameday.observe.resolver import Resolver
from gameday.observe.route53 import Route53HealthProbe

pytestmark = [pytest.mark.local_only, pytest.mark.destructive, pytest.mark.xdist_group("failover_pairs_cloud")]
REGIONS = ("eu-west-1", "us-east-1", "ap-southeast-1")
PAIRS = {"eu-west-1": "ap-southeast-1", "us-east-1": "eu-west-1", "ap-southeast-1": "eu-west-1"}
TIME_SCALE = 0.02   # 48 checkers: at 0.01 they take a core beside the suite's other worker


@pytest.fixture(scope="module")
def pairs_cloud() -> Iterator[Deployment]:
    text = ",".join(f"{r}:{p}" for r, p in PAIRS.items())
    with LocalCloud(regions=list(REGIONS), routing="failover_pairs", pairs=text, time_scale=TIME_SCALE) as cloud:
        yield load_deployment(cloud.deployment_path)


def answered_region(dep: Deployment, fetch: dns_answers.Fetch) -> list[str | None]:
    return dns_answers.regions_in(dep, fetch())


def test_the_description_and_the_zone_hold_the_pairs(pairs_cloud: Deployment) -> None:
    dep = pairs_cloud
    assert dep.routing == "failover_pairs"
    assert {r.name: r.failover_partner for r in dep.regions} == PAIRS
    route53 = AwsClients(dep).route53()
    records = route53.list_resource_record_sets(HostedZoneId=dep.hosted_zone_id)["ResourceRecordSets"]
    domain = dep.domain.rstrip(".") + "."
    latency = [r for r in records if r["Name"] == domain and r.get("Region")]
    assert sorted(r["Region"] for r in latency) == sorted(REGIONS)
    for record in latency:
        assert record["AliasTarget"]["DNSName"].rstrip(".") == f"{record['Region']}.failover.{dep.domain}".rstrip(".")
        assert record["AliasTarget"]["EvaluateTargetHealth"] is True and "HealthCheckId" not in record
    checks = {r.name: r.health_check_id for r in dep.regions}
    for region, partner in PAIRS.items():
        pair = {r["Failover"]: r for r in records if r["Name"] == f"{region}.failover.{domain}"}
        assert pair["PRIMARY"]["HealthCheckId"] == checks[region]
        assert pair["SECONDARY"]["HealthCheckId"] == checks[partner]
        assert pair["SECONDARY"]["AliasTarget"]["DNSName"].rstrip(".") == \
            dep.region(partner).regional_domain_name.rstrip(".")


def test_a_regions_clients_go_to_its_partner_then_elsewhere_when_both_are_down(pairs_cloud: Deployment,
                                                                               tmp_path: Path) -> None:
    dep = pairs_cloud
    clients = AwsClients(dep)
    probe = Route53HealthProbe(clients.route53(), dep.time_scale)
    testdns = dns_answers.TestDNSAnswer.for_deployment(clients.route53(), dep)
    for r in dep.regions:
        probe.wait_until(r.health_check_id, healthy=True, region=r.name)
    dns_answers.region_map(dep, Resolver.from_deployment(dep, cache=False), refresh=True)
    fetch = {r.name: testdns.fetcher_for_client_in(r) for r in dep.regions}
    assert {r: answered_region(dep, f) for r, f in fetch.items()} == {r: [r] for r in REGIONS}, \
        "steady state: every client served by its own region"
    failed = "us-east-1"
    partner = PAIRS[failed]
    third = next(r for r in REGIONS if r not in (failed, partner))
    journal = Journal(tmp_path / "journal.jsonl")
    poll_s = 0.05
    budget = probe.detection_budget(dep.region(failed).health_check_id) * 2
    with FlipHealth(dep, failed, clients=clients, journal=journal):
        probe.wait_until(dep.region(failed).health_check_id, healthy=False, region=failed)
        dns_answers.wait_until_excludes(fetch[failed], dep, failed, budget, poll_s)
        assert answered_region(dep, fetch[failed]) == [partner], "the failed region's clients go to its partner"
        assert answered_region(dep, fetch[partner]) == [partner] and answered_region(dep, fetch[third]) == [third]
        with FlipHealth(dep, partner, clients=clients, journal=journal):
            probe.wait_until(dep.region(partner).health_check_id, healthy=False, region=partner)
            dns_answers.wait_until_excludes(fetch[failed], dep, partner, budget, poll_s)
            # Both records of the pair are down: the latency record that aliases it is unhealthy
            # (EvaluateTargetHealth), so the client goes to the nearest healthy pair.
            assert answered_region(dep, fetch[failed]) == [third]
            assert answered_region(dep, fetch[third]) == [third]
    for r in dep.regions:
        probe.wait_until(r.health_check_id, healthy=True, region=r.name)
    back = dns_answers.wait_until_answer(fetch[failed], lambda a: dns_answers.regions_in(dep, a) == [failed],
                                         budget, poll_s, describe=f"answer {failed}", deployment=dep)
    assert back.reached_at is not None
    assert all(e["state"] == "restored" for e in journal.entries())
