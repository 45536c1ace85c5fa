"""Game day: every region's health check fails at once.

Route 53 documents what it answers then (AWS_FACTS.md): failover routing answers the PRIMARY
(both unhealthy -> primary, whatever its state); latency routing fails open, treating every
record as healthy again, so each client is answered as if nothing were down (its nearest
region). Failover between chosen pairs answers the same: its latency records fail open, and each
pair, both its records unhealthy, answers its primary, the client's own region. The harness flips
Health to 404 in every region, waits until every health check is unhealthy, asserts that answer
(for latency: for a client of each region, uncached, with its EDNS0 client subnet), and restores
every region.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from gameday.deployment import Deployment
from gameday.errors import Category
from gameday.faults.flip_health import FlipHealth
from gameday.gamedays.scenario_report import reported_scenario
from gameday.gamedays.steps import categorised_failures, fail, wait_all_healthy
from gameday.observe import dns_answers
from gameday.records import RunRecord
from gameday.report import allure as reporting


def _first_region_is(dep: Deployment, expected: list[str]) -> Callable[[list[str]], bool]:
    """An answer every value of which names a region, the first being `expected` (never vacuous:
    an empty expectation or an answer the harness cannot place does not match)."""
    return lambda answers: bool(expected) and dns_answers.all_mapped(dep, answers) and \
        [r for r in dns_answers.regions_in(dep, answers) if r][:1] == expected


def _regions_are(dep: Deployment, regions: set[str]) -> Callable[[list[str]], bool]:
    return lambda answers: bool(regions) and dns_answers.all_mapped(dep, answers) and \
        {r for r in dns_answers.regions_in(dep, answers) if r} == regions


def _routing_decision(session, dep: Deployment, client: str | None) -> dns_answers.Fetch:
    """TestDNSAnswer as a client in `client`'s region (its client subnet) would be answered."""
    testdns = dns_answers.TestDNSAnswer.for_deployment(session.clients.route53(), dep)
    return testdns.fetcher_for_client_in(dep.region(client)) if client else testdns.fetcher()


def _expected(dep, client_region: str | None) -> list[str]:
    """The documented answer with every record unhealthy."""
    if dep.routing == "failover":
        return [r.name for r in dep.regions if r.failover_role == "PRIMARY"]
    return [client_region] if client_region else []


@pytest.mark.failover
@pytest.mark.destructive
@pytest.mark.parametrize("routing", ["failover", "latency"])
def test_all_regions_down(gameday_for_routing, routing: str) -> None:
    session = gameday_for_routing(routing)
    dep = session.deployment
    poll_s = session.poll_s
    clients = [r.name for r in dep.regions if r.client_address or r.client_network] \
        if routing == "latency" else [None]
    run = RunRecord(scenario=f"all_regions_down_{routing}", failed_region="all")
    with reported_scenario(session, run, feature="All regions down",
                           story=f"Every health check fails: {routing} routing answers as documented"), \
            categorised_failures(run):
        if routing == "latency" and not clients:
            raise fail(run, Category.HARNESS_ERROR, "latency routing: no region has a client_network or "
                                                      "client_address to ask as")
        with reporting.phase("steady state") as entry:
            entry.update(health=wait_all_healthy(session, poll_s))
            dns_answers.region_map(dep, session.resolver, refresh=True)
            decision = {c: _routing_decision(session, dep, c) for c in clients}
            steady = {c: decision[c]() for c in clients}
            for c, answer in steady.items():
                dns_answers.mapped_regions(dep, answer, what=f"TestDNSAnswer for client {c}")
            run.evidence["steady_state"] = {"dns_answers": {str(c): a for c, a in steady.items()},
                                            "region_map": dns_answers.region_map(dep).public()}
        with contextlib.ExitStack() as faults:
            for region in dep.regions:
                fault = faults.enter_context(FlipHealth(dep, region.name, clients=session.clients,
                                                        journal=session.journal))
                run.marks.setdefault("fault", fault.injected_at)
            with reporting.phase("every region unhealthy") as entry:
                detection = {}
                for region in dep.regions:
                    wait = session.health.wait_until(region.health_check_id, healthy=False, region=region.name,
                                                     budget_s=session.detection_budget(region.health_check_id),
                                                     poll_s=poll_s, on_progress=session.progress.health)
                    detection[region.name] = round(wait.reached_at - run.marks["fault"], 4)
                run.mark("detected")
                run.figures["detection_by_region_s"] = detection
                run.figures["detection_s"] = max(detection.values())
                entry.update(detection_s=detection)
            with reporting.phase(f"{routing} answer with every record unhealthy") as entry:
                # every check is already unhealthy: what is left is Route 53 applying it, one interval
                budget = max(session.interval_s(r.health_check_id) for r in dep.regions) + session.ttl_s
                answered: dict[str, dict[str, Any]] = {}
                for c in clients:
                    expected = _expected(dep, c)
                    fetch = decision[c]
                    wait = dns_answers.wait_until_answer(
                        fetch, _first_region_is(dep, expected), budget, poll_s,
                        describe=f"answer {expected} for client {c}", deployment=dep)
                    answered[str(c)] = {"answers": wait.answers, "regions": dns_answers.regions_in(dep, wait.answers)}
                run.mark("dns_shift")
                testdns = dns_answers.TestDNSAnswer.for_deployment(session.clients.route53(), dep)
                run.evidence["all_down"] = {"dns_answers": answered, "testdnsanswer": testdns.answer()}
                run.figures["fail_open_regions"] = sorted({r for v in answered.values() for r in v["regions"] if r})
                entry.update(answers=answered)
            run.mark("restore")
        with reporting.phase("restore every region") as entry:
            entry.update(health=wait_all_healthy(session, poll_s))
            for c in clients:
                back = set(r for r in dns_answers.regions_in(dep, steady[c]) if r)
                dns_answers.wait_until_answer(
                    decision[c], _regions_are(dep, back), session.all_checks_budget(), poll_s,
                    describe=f"steady answer {sorted(back)} for client {c}", deployment=dep)
            run.mark("recovered")
        if routing == "failover":
            run.findings.append(f"all regions down: failover routing answered only the primary "
                                f"{run.figures['fail_open_regions']} (documented: both unhealthy -> primary)")
        else:
            run.findings.append(f"all regions down: latency routing failed open, every client answered by its own "
                                f"region {run.figures['fail_open_regions']} (documented: all unhealthy -> all healthy)")
