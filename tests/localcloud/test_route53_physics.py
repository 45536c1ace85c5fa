"""Route 53 physics through real clients: checkers that really probe, the 18% rule,
GetHealthCheckStatus / LastFailureReason / TestDNSAnswer over boto3, and real DNS queries."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import dns.edns
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
from tenacity import Retrying, stop_after_delay, wait_fixed

from gameday.localcloud.motoglue import patches
from gameday.localcloud.process.context import CHECKER_REGIONS
from gameday.localcloud.route53 import api as route53_api
from gameday.localcloud.route53.health_checkers import JITTER
from tests.support.route53_rig import INTERVAL, REGIONS, THRESHOLD, Rig, start_rig, stop_rig

PRIMARY, SECONDARY = REGIONS
WAIT_S = 10.0   # a generous bound for waits that are not the measured figure


@pytest.fixture(scope="module")
def rig_session() -> Iterator[Rig]:
    rig = start_rig()
    try:
        yield rig
    finally:
        stop_rig(rig)


@pytest.fixture
def rig(rig_session: Rig) -> Iterator[Rig]:
    """The module's rig, with every region healthy and this test's zones and checks removed after it."""
    yield rig_session
    rig_session.cleanup()


def detection_budget(rig: Rig) -> tuple[float, float]:
    """(earliest, latest) local seconds from a fault to the aggregate flip: about threshold x interval."""
    interval = rig.scaled(INTERVAL)
    # Probes in flight at the fault count with the new state when their answer comes later;
    # on a loaded machine the answers of a whole interval can arrive at once: one interval off.
    earliest = (THRESHOLD - 1) * interval * (1 - JITTER) - interval
    latest = THRESHOLD * interval * (1 + JITTER) + 2 * interval + 0.5   # 0.5 s: a loaded 2-core machine
    return earliest, latest


def load_allowance(rig: Rig) -> float:
    """Extra seconds a loaded machine added: THRESHOLD late firings and slow probes, as the fleet measured."""
    timing = rig.physics.fleet.timing(reset=True)
    return THRESHOLD * (timing["max_lateness_s"] + timing["max_probe_s"])


def flip_time(rig: Rig, hc_id: str, healthy: bool, since: float) -> float:
    """Local seconds from `since` to the ground-truth health_status event (polled generously)."""
    for attempt in Retrying(stop=stop_after_delay(WAIT_S), wait=wait_fixed(0.02), reraise=True):
        with attempt:
            events = [e for e in rig.ctx.truth.events(kind="health_status")
                      if e["health_check_id"] == hc_id and e["healthy"] is healthy and e["t"] >= since]
            assert events, f"no health_status healthy={healthy} for {hc_id}"
    return events[0]["t"] - since


def assert_threshold_rule(rig: Rig, hc_id: str, since: float) -> None:
    """Every checker whose verdict turned to failure did so on its THRESHOLD-th consecutive failure."""
    by_checker: dict[str, list[dict[str, Any]]] = {}
    for event in rig.ctx.truth.events(kind="checker_result"):
        if event["health_check_id"] == hc_id and event["t"] >= since:
            by_checker.setdefault(event["checker"], []).append(event)
    flipped = 0
    for results in by_checker.values():
        turn = next((i for i, e in enumerate(results) if not e["verdict"]), None)
        if turn is None:
            continue
        flipped += 1
        run = 0
        for event in results[:turn + 1]:
            run = run + 1 if not event["ok"] else 0
        assert run == THRESHOLD, results[:turn + 1]
    assert flipped >= 14


def statuses(rig: Rig, hc_id: str) -> list[str]:
    obs = rig.route53.get_health_check_status(HealthCheckId=hc_id)["HealthCheckObservations"]
    return [o["StatusReport"]["Status"] for o in obs]


def dns_query(rig: Rig, name: str, rtype: str = "A", ecs: tuple[str, int] | None = None,
              source: str | None = None) -> dns.message.Message:
    options = [dns.edns.ECSOption(ecs[0], ecs[1])] if ecs else []
    query = dns.message.make_query(name, rtype, use_edns=0 if ecs else None, options=options or None)
    host, port = rig.ctx.dns_address
    return dns.query.udp(query, host, port=port, timeout=2, source=source)


def a_records(message: dns.message.Message) -> list[str]:
    return [item.address for rrset in message.answer if rrset.rdtype == 1 for item in rrset]


def answer_data(rig: Rig, zone_id: str, domain: str, **extra: Any) -> list[str]:
    return rig.route53.test_dns_answer(HostedZoneId=zone_id, RecordName=domain, RecordType="A",
                                       **extra)["RecordData"]


def wait_answer(rig: Rig, zone_id: str, domain: str, expected: list[str], **extra: Any) -> None:
    for attempt in Retrying(stop=stop_after_delay(5), wait=wait_fixed(0.02), reraise=True):
        with attempt:
            assert answer_data(rig, zone_id, domain, **extra) == expected


# ---- failover ------------------------------------------------------------------------------------
def test_failover_404_detected_in_threshold_times_interval_and_reversed(rig: Rig) -> None:
    primary_hc, secondary_hc = rig.health_check(PRIMARY), rig.health_check(SECONDARY)
    zone_id, _, domain = rig.zone("failover", {PRIMARY: primary_hc, SECONDARY: secondary_hc})
    primary_addr, secondary_addr = (rig.ctx.region(r).address for r in REGIONS)
    wait_answer(rig, zone_id, domain, [rig.api_host(PRIMARY)])
    for attempt in Retrying(stop=stop_after_delay(3), wait=wait_fixed(0.02), reraise=True):
        with attempt:   # every checker has probed once: a successful result, not "new"
            assert all(s == "Success: HTTP Status Code 200, OK" for s in statuses(rig, primary_hc))
    reply = dns_query(rig, domain)
    assert a_records(reply) == [primary_addr]
    assert {rrset.ttl for rrset in reply.answer} == {60}

    earliest, latest = detection_budget(rig)
    rig.physics.fleet.timing(reset=True)
    fault = time.time()
    rig.servers[PRIMARY].status = 404
    took = flip_time(rig, primary_hc, False, fault)
    latest += load_allowance(rig)
    assert earliest <= took <= latest, f"detection {took:.3f}s outside [{earliest:.3f}, {latest:.3f}]"

    observed = statuses(rig, primary_hc)
    assert len(observed) == 16
    failures = [s for s in observed if s.startswith("Failure")]
    assert len(failures) / len(observed) > 0.82
    # (on a starved machine a few may read "Response timed out": the floor of the scaled timeout)
    assert max(set(failures), key=failures.count) == "Failure: HTTP Status Code 404, Not Found"
    assert answer_data(rig, zone_id, domain) == [rig.api_host(SECONDARY)]
    assert a_records(dns_query(rig, domain)) == [secondary_addr]
    shifted = [e for e in rig.ctx.truth.events(kind="dns_answer") if e["name"] == domain and e["t"] >= fault]
    assert shifted and shifted[-1]["region"] == SECONDARY and shifted[-1]["answers"][-1] == secondary_addr
    assert_threshold_rule(rig, primary_hc, fault)

    results = [e for e in rig.ctx.truth.events(kind="checker_result")
               if e["health_check_id"] == primary_hc and e["t"] >= fault and not e["ok"]]
    assert len({e["checker"] for e in results}) >= 14
    assert {e["region"] for e in results} <= set(CHECKER_REGIONS)

    reasons = rig.route53.get_health_check_last_failure_reason(HealthCheckId=primary_hc)
    assert reasons["HealthCheckObservations"]
    last = [o["StatusReport"]["Status"] for o in reasons["HealthCheckObservations"]]
    assert all(text.startswith("Failure: HTTP Status Code 404") for text in last), last

    earliest, latest = detection_budget(rig)
    rig.physics.fleet.timing(reset=True)
    restore = time.time()
    rig.servers[PRIMARY].status = 200
    took = flip_time(rig, primary_hc, True, restore)
    latest += load_allowance(rig)
    assert earliest <= took <= latest, f"recovery {took:.3f}s outside [{earliest:.3f}, {latest:.3f}]"
    assert answer_data(rig, zone_id, domain) == [rig.api_host(PRIMARY)]
    assert a_records(dns_query(rig, domain)) == [primary_addr]


def test_failover_both_unhealthy_answers_primary_and_secondary_without_check_is_served(rig: Rig) -> None:
    primary_hc, secondary_hc = rig.health_check(PRIMARY), rig.health_check(SECONDARY)
    zone_id, _, domain = rig.zone("failover", {PRIMARY: primary_hc, SECONDARY: secondary_hc})
    rig.servers[PRIMARY].status = 500
    rig.servers[SECONDARY].status = 503
    rig.wait_health(primary_hc, False, WAIT_S)
    rig.wait_health(secondary_hc, False, WAIT_S)
    assert answer_data(rig, zone_id, domain) == [rig.api_host(PRIMARY)]
    assert any(s == "Failure: HTTP Status Code 503, Service Unavailable" for s in statuses(rig, secondary_hc))

    zone_id2, _, domain2 = rig.zone("failover", {PRIMARY: primary_hc, SECONDARY: None})
    assert answer_data(rig, zone_id2, domain2) == [rig.api_host(SECONDARY)]


def test_connection_refused_is_a_failure_with_aws_text(rig: Rig) -> None:
    hc_id = rig.health_check(PRIMARY, FullyQualifiedDomainName=None, IPAddress="127.0.0.1",
                             Port=_free_port())
    rig.wait_health(hc_id, False, WAIT_S)
    observed = statuses(rig, hc_id)
    failures = [s for s in observed if s.startswith("Failure")]
    assert len(failures) / len(observed) > 0.82
    assert all(s.startswith("Failure: Connection refused") for s in failures)


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_search_string_and_tcp_checks(rig: Rig) -> None:
    matching = rig.health_check(PRIMARY, Type="HTTP_STR_MATCH", SearchString='"ok"')
    missing = rig.health_check(PRIMARY, Type="HTTP_STR_MATCH", SearchString="nowhere")
    tcp = rig.health_check(SECONDARY, Type="TCP", ResourcePath=None)
    rig.wait_health(missing, False, WAIT_S)
    assert rig.physics.fleet.status(matching) and rig.physics.fleet.status(tcp)
    assert all(s.startswith("Success: TCP") for s in statuses(rig, tcp))


def test_checks_created_and_deleted_later_are_picked_up(rig: Rig) -> None:
    fleet = rig.physics.fleet
    hc_id = rig.health_check(PRIMARY)
    for attempt in Retrying(stop=stop_after_delay(2), wait=wait_fixed(0.02), reraise=True):
        with attempt:
            assert hc_id in fleet.known()
            first = rig.route53.get_health_check_status(HealthCheckId=hc_id)["HealthCheckObservations"]
            assert all(o["StatusReport"]["Status"].startswith("Success: HTTP") for o in first)
    for attempt in Retrying(stop=stop_after_delay(2), wait=wait_fixed(0.05), reraise=True):
        with attempt:   # observations are fresh: every checker keeps probing
            later = rig.route53.get_health_check_status(HealthCheckId=hc_id)["HealthCheckObservations"]
            assert all(b["StatusReport"]["CheckedTime"] > a["StatusReport"]["CheckedTime"]
                       for a, b in zip(first, later, strict=True))
    regions = {o["Region"] for o in later}
    assert regions == set(CHECKER_REGIONS) and len(later) == 16
    rig.route53.delete_health_check(HealthCheckId=hc_id)
    for attempt in Retrying(stop=stop_after_delay(2), wait=wait_fixed(0.02), reraise=True):
        with attempt:
            assert hc_id not in fleet.known()


def test_checker_regions_of_a_check_set_the_fleet(rig: Rig) -> None:
    three = ["us-east-1", "eu-west-1", "ap-southeast-2"]
    hc_id = rig.health_check(PRIMARY, Regions=three)
    for attempt in Retrying(stop=stop_after_delay(2), wait=wait_fixed(0.02), reraise=True):
        with attempt:
            observed = rig.route53.get_health_check_status(HealthCheckId=hc_id)["HealthCheckObservations"]
            assert sorted(o["Region"] for o in observed) == sorted(three * 2)


# ---- latency -------------------------------------------------------------------------------------
def test_latency_routes_by_client_subnet_and_fails_open(rig: Rig) -> None:
    checks = {r: rig.health_check(r) for r in REGIONS}
    zone_id, _, domain = rig.zone("latency", checks)
    addr = {r: rig.ctx.region(r).address for r in REGIONS}
    for region in REGIONS:
        ecs = {"EDNS0ClientSubnetIP": addr[region], "EDNS0ClientSubnetMask": "32"}
        wait_answer(rig, zone_id, domain, [rig.api_host(region)], **ecs)
        assert answer_data(rig, zone_id, domain, ResolverIP=addr[region]) == [rig.api_host(region)]
        reply = dns_query(rig, domain, ecs=(addr[region], 32))
        assert a_records(reply) == [addr[region]]
        echoed = [o for o in reply.options if isinstance(o, dns.edns.ECSOption)]
        assert echoed and echoed[0].scopelen == 32
        assert a_records(dns_query(rig, domain, source=addr[region])) == [addr[region]]
    # an unknown client is served as the first region's
    assert answer_data(rig, zone_id, domain, ResolverIP="127.0.0.1") == [rig.api_host(PRIMARY)]

    rig.servers[SECONDARY].status = 404
    rig.wait_health(checks[SECONDARY], False, WAIT_S)
    ecs2 = {"EDNS0ClientSubnetIP": addr[SECONDARY], "EDNS0ClientSubnetMask": "32"}
    assert answer_data(rig, zone_id, domain, **ecs2) == [rig.api_host(PRIMARY)]
    assert a_records(dns_query(rig, domain, ecs=(addr[SECONDARY], 32))) == [addr[PRIMARY]]
    truth = [e for e in rig.ctx.truth.events(kind="dns_answer") if e["name"] == domain]
    assert truth[-1]["client_region"] == SECONDARY and truth[-1]["region"] == PRIMARY

    rig.servers[PRIMARY].status = 404       # every record unhealthy: fail open
    rig.wait_health(checks[PRIMARY], False, WAIT_S)
    assert answer_data(rig, zone_id, domain, **ecs2) == [rig.api_host(SECONDARY)]
    assert a_records(dns_query(rig, domain, ecs=(addr[SECONDARY], 32))) == [addr[SECONDARY]]


# ---- Inverted / Disabled ---------------------------------------------------------------------------
def test_inverted_flips_and_disabled_is_healthy(rig: Rig) -> None:
    inverted = rig.health_check(PRIMARY, Inverted=True)
    rig.wait_health(inverted, False, WAIT_S)         # endpoint healthy, check inverted
    observed = statuses(rig, inverted)
    assert sum(s.startswith("Failure") for s in observed) / len(observed) > 0.82

    disabled = rig.health_check(SECONDARY)
    rig.servers[SECONDARY].status = 404
    rig.wait_health(disabled, False, WAIT_S)
    rig.route53.update_health_check(HealthCheckId=disabled, Disabled=True)
    rig.wait_health(disabled, True, WAIT_S)
    assert all(s.startswith("Success") for s in statuses(rig, disabled))
    rig.route53.update_health_check(HealthCheckId=disabled, Disabled=False)
    rig.wait_health(disabled, False, WAIT_S)


# ---- DNS server ----------------------------------------------------------------------------------
def test_dns_server_answers_zone_apex_names_and_refuses_outside(rig: Rig) -> None:
    zone_id, zone, domain = rig.zone("failover", {PRIMARY: None, SECONDARY: None})
    soa = dns_query(rig, zone, "SOA")
    assert soa.rcode() == dns.rcode.NOERROR and soa.answer[0].rdtype == dns.rdatatype.SOA
    ns = dns_query(rig, zone, "NS")
    assert len(list(ns.answer[0])) == 4
    missing = dns_query(rig, f"nothing.{zone}")
    assert missing.rcode() == dns.rcode.NXDOMAIN and missing.authority
    aaaa = dns_query(rig, domain, "AAAA")
    assert aaaa.rcode() == dns.rcode.NOERROR and not a_records(aaaa)
    api = dns_query(rig, rig.api_host(SECONDARY))
    assert a_records(api) == [rig.ctx.region(SECONDARY).address]
    assert dns_query(rig, "example.com").rcode() == dns.rcode.REFUSED
    assert answer_data(rig, zone_id, f"nothing.{zone}") == []
    assert rig.route53.test_dns_answer(HostedZoneId=zone_id, RecordName=f"nothing.{zone}",
                                       RecordType="A")["ResponseCode"] == "NXDOMAIN"


def test_dns_server_survives_garbage(rig: Rig) -> None:
    import socket
    host, port = rig.ctx.dns_address
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(b"\x12\x34" + b"\xff" * 20, (host, port))
        reply, _ = sock.recvfrom(512)
    assert reply[:2] == b"\x12\x34" and reply[3] & 0x0F == dns.rcode.FORMERR
    assert dns_query(rig, rig.api_host(PRIMARY)).rcode() == dns.rcode.NOERROR


# ---- bad input -----------------------------------------------------------------------------------
def _error(call: Any, **kwargs: Any) -> tuple[str, int]:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"], info.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_bad_input_gets_aws_shaped_errors(rig: Rig) -> None:
    r53 = rig.route53
    missing = "11111111-2222-3333-4444-555555555555"
    assert _error(r53.get_health_check_status, HealthCheckId=missing)[0] == "NoSuchHealthCheck"
    assert _error(r53.get_health_check_last_failure_reason, HealthCheckId=missing)[0] == "NoSuchHealthCheck"
    assert _error(r53.get_health_check_status, HealthCheckId="x" * 65)[0] == "InvalidInput"
    zone_id, zone, domain = rig.zone("failover", {PRIMARY: None, SECONDARY: None})
    assert _error(r53.test_dns_answer, HostedZoneId="ZNOSUCHZONE", RecordName=domain,
                  RecordType="A")[0] == "NoSuchHostedZone"
    assert _error(r53.test_dns_answer, HostedZoneId=zone_id, RecordName=domain, RecordType="BOGUS")[0] == \
        "InvalidInput"
    assert _error(r53.test_dns_answer, HostedZoneId=zone_id, RecordName=domain, RecordType="A",
                  ResolverIP="not-an-ip")[0] == "InvalidInput"
    assert _error(r53.test_dns_answer, HostedZoneId=zone_id, RecordName=domain, RecordType="A",
                  EDNS0ClientSubnetIP="127.0.0.1", EDNS0ClientSubnetMask="33")[0] == "InvalidInput"
    assert _error(r53.test_dns_answer, HostedZoneId=zone_id, RecordName="api.elsewhere.test",
                  RecordType="A")[0] == "InvalidInput"


# ---- patch points and the aws CLI ----------------------------------------------------------------
def test_route53_patch_points_have_not_moved(rig: Rig) -> None:
    points = [route53_api.URL_PATHS, route53_api.STATUS, route53_api.LAST_FAILURE, route53_api.TEST_DNS]
    assert {p.target for p in points} <= {p.target for p in patches.all_points()}
    assert [problem for p in points for problem in p.problems()] == []


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("aws") is None, reason="the aws CLI is not installed")
def test_aws_cli_reads_health_check_status_and_test_dns_answer(rig: Rig) -> None:
    hc_id = rig.health_check(PRIMARY)
    zone_id, _, domain = rig.zone("failover", {PRIMARY: hc_id, SECONDARY: None})
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_PAGER": ""}
    base = ["aws", "--endpoint-url", rig.ctx.aws_endpoint_url, "--output", "json", "route53"]
    out = subprocess.run(base + ["get-health-check-status", "--health-check-id", hc_id],
                         capture_output=True, text=True, env=env, timeout=60, check=True).stdout
    assert '"HealthCheckObservations"' in out and '"Status": "' in out
    out = subprocess.run(base + ["test-dns-answer", "--hosted-zone-id", zone_id, "--record-name", domain,
                                 "--record-type", "A"], capture_output=True, text=True, env=env, timeout=60,
                         check=True).stdout
    assert rig.api_host(PRIMARY) in out
    bad = subprocess.run(base + ["get-health-check-status", "--health-check-id", "nope"],
                         capture_output=True, text=True, env=env, timeout=60, check=False)
    assert bad.returncode != 0 and "NoSuchHealthCheck" in bad.stderr


def test_control_route_shows_checks_and_answers(rig: Rig) -> None:
    import requests
    hc_id = rig.health_check(PRIMARY)
    rig.zone("failover", {PRIMARY: hc_id, SECONDARY: None})
    for attempt in Retrying(stop=stop_after_delay(WAIT_S), wait=wait_fixed(0.05), reraise=True):
        with attempt:
            body = requests.get(f"{rig.ctx.aws_endpoint_url}/_gameday/route53/status", timeout=5).json()
            assert body["health_checks"][hc_id]["healthy"] is True
            assert any(rig.api_host(PRIMARY) in answers for answers in body["dns_answers"].values())
    assert tuple(body["dns_address"]) == tuple(rig.ctx.dns_address)
