"""The four moments of a detection against the full local cloud, each held against the cloud's
ground truth: checkers see failure, Route 53 declares the region unhealthy (rebuilt from the
checkers' CheckedTime sequences), the routing decision changes (TestDNSAnswer), a TTL-honouring
client follows. And the same detection with half of the GetHealthCheckStatus calls throttled."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from gameday.aws import AwsClients
from gameday.deployment import Deployment
from gameday.faults import FlipHealth
from gameday.faults.journal import Journal
from gameday.observe.dns_answers import TestDNSAnswer, regions_in, resolver_fetcher, wait_until_excludes
from gameday.observe.resolver import Resolver
from gameday.observe.route53 import Route53HealthProbe, default_poll_interval
from tests.integration.test_api_budget import proxy_throttling_every_other_call

pytestmark = [pytest.mark.local_only, pytest.mark.destructive]
RTT_S = 0.25     # a request's round trip on a loaded 2-core machine, beside the poll interval


def truth(dep: Deployment, kind: str, since: int = 0) -> tuple[list[dict[str, Any]], int]:
    body = requests.get(f"{dep.control_url}/events", params={"since": since, "kind": kind}, timeout=5).json()
    return body["events"], body["last_seq"]


def primary_of(dep: Deployment) -> Any:
    if dep.routing != "failover":
        pytest.skip("failover routing only")
    return next(r for r in dep.regions if r.failover_role == "PRIMARY")


def throttling_counts(dep: Deployment) -> dict[str, Any]:
    return requests.get(f"{dep.control_url}/route53/throttling", timeout=5).json()


def test_four_moments_agree_with_ground_truth(local_cloud: Deployment, tmp_path: Path) -> None:
    clients = AwsClients(local_cloud)
    probe = Route53HealthProbe(clients.route53(), local_cloud.time_scale)
    region = primary_of(local_cloud)
    hc = region.health_check_id
    poll_s = default_poll_interval(probe.health_check_config(hc), local_cloud.time_scale)
    for r in local_cloud.regions:
        probe.wait_until(r.health_check_id, healthy=True, region=r.name)
    answer = TestDNSAnswer.for_deployment(clients.route53(), local_cloud)
    client_resolver = Resolver.from_deployment(local_cloud, cache=True)
    cached = resolver_fetcher(client_resolver, local_cloud.domain, cached=True)
    assert cached(), "the client resolves (and caches) before the fault"
    budget = probe.detection_budget(hc) + local_cloud.record_ttl_s * local_cloud.time_scale
    before_throttled = sum(throttling_counts(local_cloud)["throttled"].values())
    _, since = truth(local_cloud, "checker_result")
    with FlipHealth(local_cloud, region.name, clients=clients, journal=Journal(tmp_path / "j.jsonl")) as fault, \
            concurrent.futures.ThreadPoolExecutor(2) as pool:
        routing = pool.submit(wait_until_excludes, answer.fetcher(), local_cloud, region.name, budget, poll_s)
        client = pool.submit(wait_until_excludes, cached, local_cloud, region.name, budget, poll_s)
        wait = probe.wait_until(hc, healthy=False, poll_s=poll_s, region=region.name,
                                confirm=lambda: region.name not in regions_in(local_cloud, answer.answer()))
        shift, followed = routing.result(), client.result()
        fault_t = fault.injected_at
    results, _ = truth(local_cloud, "checker_result", since)
    statuses, _ = truth(local_cloud, "health_status", since)
    answers, _ = truth(local_cloud, "dns_answer", since)
    first_failure = min(e["t"] for e in results if e["health_check_id"] == hc and not e["ok"] and e["t"] >= fault_t)
    declared = min(e["t"] for e in statuses if e["health_check_id"] == hc and e["healthy"] is False)
    domain = local_cloud.domain.rstrip(".").lower()
    shifted = min(e["t"] for e in answers if e["name"].rstrip(".").lower() == domain
                  and e.get("region") not in (None, region.name))
    figures = wait.figures(fault_t)

    # (a) checkers see failure: the first poll showing a Failure, within one poll after the truth.
    assert wait.first_change_seen_at is not None and wait.first_change_at is not None
    assert 0 <= wait.first_change_seen_at - first_failure <= wait.max_gap_s + RTT_S
    # When the wait says results fell between polls, it also says its moments may be off by up to an
    # interval (the first failing result it saw may be a checker's second): the precision it claims.
    imprecise = [f for f in wait.flags if "may have fallen between two polls" in f or "results went unseen" in f]
    if imprecise:
        assert -0.05 < wait.first_change_at - first_failure <= wait.interval_s + 0.05, wait.flags
    else:
        assert abs(wait.first_change_at - first_failure) < 0.05      # CheckedTime is the probe's time
    # (b) Route 53 declares it: rebuilt from the CheckedTime sequences, not from ">82% failing", and
    # confirmed by the routing decision (which pins it when a loaded machine made polls miss results).
    claimed = wait.max_gap_s + RTT_S + (wait.interval_s if imprecise else 0.0)
    assert 0 <= wait.reached_at - declared <= claimed, (wait.reached_at - declared, wait.flags)
    assert wait.confirmed_at is not None and wait.confirmed_at >= wait.reached_at
    if wait.missed_results == 0 and not imprecise:   # (a loaded cloud's checkers can probe twice between polls)
        assert wait.declared_at is not None and abs(wait.declared_at - declared) <= wait.interval_s
    else:
        assert imprecise, wait.flags
    assert wait.observation_rule_at is not None and wait.observation_rule_at <= wait.reached_at
    # (c) the routing decision changes (TestDNSAnswer), after the declaration, within one poll.
    assert 0 <= shift.reached_at - shifted <= shift.max_gap_s + RTT_S
    # (d) the TTL-honouring client follows once its cache expires: after the decision, within a TTL.
    ttl = local_cloud.record_ttl_s * local_cloud.time_scale
    assert shift.reached_at - RTT_S <= followed.reached_at <= shifted + ttl + followed.max_gap_s + RTT_S
    # The moments are apart, in order, and the API figures are there.
    assert figures["checkers_see_failure_s"] <= figures["observation_rule_s"] <= wait.reached_at - fault_t
    assert figures["route53_throttled"] == 0 and figures["route53_api_calls"] > 0
    assert figures["route53_calls_per_aws_s"] is not None
    assert sum(throttling_counts(local_cloud)["throttled"].values()) == before_throttled, \
        "the harness's own budget kept it under the cloud's buckets"
    probe.wait_until(hc, healthy=True, region=region.name)


def test_half_the_status_calls_throttled_is_absorbed_and_reported(local_cloud: Deployment, tmp_path: Path) -> None:
    clients = AwsClients(local_cloud)
    route53 = clients.route53()
    probe = Route53HealthProbe(route53, local_cloud.time_scale)
    region = primary_of(local_cloud)
    hc = region.health_check_id
    poll_s = default_poll_interval(probe.health_check_config(hc), local_cloud.time_scale)
    probe.wait_until(hc, healthy=True, region=region.name)
    proxy_throttling_every_other_call(route53)
    _, since = truth(local_cloud, "health_status")
    with FlipHealth(local_cloud, region.name, clients=clients, journal=Journal(tmp_path / "j.jsonl")) as fault:
        began = time.monotonic()
        wait = probe.wait_until(hc, healthy=False, poll_s=poll_s, region=region.name)
        took = time.monotonic() - began
        fault_t = fault.injected_at
    statuses, _ = truth(local_cloud, "health_status", since)
    declared = min(e["t"] for e in statuses if e["health_check_id"] == hc and e["healthy"] is False)
    assert took < wait.budget_s
    assert wait.throttled >= 2 and any("Throttling" in f for f in wait.flags)
    assert sum(p.throttled for p in wait.history) == wait.throttled
    figures = wait.figures(fault_t)
    assert figures["route53_throttled"] == wait.throttled
    # Backoff stays under half an interval, so the rebuild still sees every result and the detection
    # is still within the (wider) poll gap of the truth, not botocore's seconds of backoff later.
    assert 0 <= wait.reached_at - declared <= wait.max_gap_s + RTT_S
    assert wait.max_gap_s < 3 * wait.interval_s, "botocore's backoff, not the harness's"
    if wait.max_gap_s >= wait.interval_s:   # a loaded machine stretched a gap: the wait must say so
        assert any("wider than the checkers' interval" in f for f in wait.flags), wait.flags
    probe.wait_until(hc, healthy=True, region=region.name)
