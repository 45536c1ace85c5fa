"""Game day on a latency-routed deployment: a client of each region (EDNS0 client subnet from
regions[].client_address) is served by its own region; when its region fails, by another (on a
deployment failing over between chosen pairs, by the region's partner); after the restore, by its
own again. Clients of the other regions never move.

Evidence: DNS answers for each client asked uncached (the routing decision) and requests
through the global domain from each client (the region whose address served them), plus
background traffic from every client honouring the TTL (timeline, failback from traffic).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from gameday.errors import Category
from gameday.faults.flip_health import FlipHealth
from gameday.gamedays.scenario_report import reported_scenario
from gameday.gamedays.steps import categorised_failures, fail, wait_all_healthy, wait_for
from gameday.load.global_client import GlobalClient
from gameday.load.traffic import Traffic
from gameday.measure import metrics
from gameday.observe import dns_answers
from gameday.records import RunRecord
from gameday.report import allure as reporting

RATE_PER_CLIENT = 30.0


def _served(session, client_region: str) -> str | None:
    """Who serves a GET /health from a client of `client_region` (uncached DNS)."""
    with GlobalClient.from_deployment(session.deployment, region=client_region, dns_mode="no-cache") as client:
        return client.get("/health").region


@pytest.mark.failover
@pytest.mark.destructive
def test_latency_routing(latency_gameday, failed_region: str) -> None:
    session = latency_gameday
    dep = session.deployment
    if failed_region not in dep.region_names:
        pytest.skip(f"{failed_region} is not a region of the latency-routed deployment ({dep.region_names})")
    poll_s = session.poll_s
    clients = [r.name for r in dep.regions]
    others = [c for c in clients if c != failed_region]
    run = RunRecord(scenario="latency_routing", failed_region=failed_region)
    # The routing decision for a client in each region: TestDNSAnswer with that region's client subnet
    # (resolvers on the way usually drop a client's EDNS0 subnet; Route 53's own answer does not).
    testdns = dns_answers.TestDNSAnswer.for_deployment(session.clients.route53(), dep)
    fetch = {c: testdns.fetcher_for_client_in(dep.region(c)) for c in clients}
    hc = dep.region(failed_region).health_check_id

    def answered(c: str) -> list[str]:
        return [r for r in dns_answers.regions_in(dep, fetch[c]()) if r]

    with reported_scenario(session, run, feature="Latency routing",
                           story="Each client is served by its own region, by another while it is down"), \
            categorised_failures(run):
        missing = [r.name for r in dep.regions if not r.client_address]
        if missing:
            raise fail(run, Category.HARNESS_ERROR, f"regions without client_address (needed as EDNS0 client subnet): "
                                             f"{missing}")
        traffic = {c: Traffic.from_deployment(dep, region=c, rate=RATE_PER_CLIENT, write_ratio=0.5, threads=4)
                   for c in clients}
        try:
            for t in traffic.values():
                t.start()
            with reporting.phase("steady state: every client served by its own region") as entry:
                entry.update(health=wait_all_healthy(session, poll_s))
                dns_answers.region_map(dep, session.resolver, refresh=True)
                for c in clients:
                    dns_answers.mapped_regions(dep, fetch[c](), what=f"TestDNSAnswer for a client in {c}")
                before: dict[str, dict[str, Any]] = {c: {"dns": answered(c), "served_by": _served(session, c)} for c in clients}
                run.evidence["steady_state"] = before
                wrong = {c: v for c, v in before.items() if v["dns"][:1] != [c] or v["served_by"] != c}
                if wrong:
                    raise fail(run, Category.WRONG_REGION, f"steady state: clients not served by their own region: {wrong}")
            with FlipHealth(dep, failed_region, clients=session.clients, journal=session.journal) as fault:
                run.mark("fault", fault.injected_at)
                with reporting.phase("detect") as entry:
                    wait = session.health.wait_until(hc, healthy=False, budget_s=session.detection_budget(hc),
                                                     region=failed_region, poll_s=poll_s,
                                                     on_progress=session.progress.health)
                    run.mark("detected", wait.reached_at)
                    run.figures["detection_s"] = round(wait.reached_at - fault.injected_at, 4)
                    run.evidence["health_observations"] = [
                        {"t": p.t, "region": failed_region, "failing": p.failing, "total": p.total}
                        for p in wait.history]
                    entry.update(detection_s=run.figures["detection_s"])
                with reporting.phase(f"client of {failed_region} moves to another region") as entry:
                    budget = session.dns_shift_budget(hc, through_resolver=False)
                    shift = dns_answers.wait_until_excludes(fetch[failed_region], dep, failed_region, budget, poll_s)
                    run.mark("dns_shift", shift.reached_at)
                    run.figures["dns_shift_s"] = round(shift.reached_at - fault.injected_at, 4)
                    during: dict[str, dict[str, Any]] = {c: {"dns": answered(c), "served_by": _served(session, c)} for c in clients}
                    run.evidence["during"] = during
                    run.survivor = during[failed_region]["served_by"]
                    entry.update(during=during)
                    if during[failed_region]["served_by"] in (None, failed_region):
                        raise fail(run, Category.WRONG_REGION, f"a client of {failed_region} was served by "
                                                        f"{during[failed_region]['served_by']} while it is down")
                    partner = dep.expected_survivor(failed_region)
                    if partner is not None and during[failed_region]["served_by"] != partner:
                        raise fail(run, Category.WRONG_REGION, f"a client of {failed_region} was served by "
                                                        f"{during[failed_region]['served_by']}, not its failover "
                                                        f"partner {partner}")
                    moved = {c: during[c] for c in others if during[c]["served_by"] != c}
                    if moved:
                        raise fail(run, Category.WRONG_REGION, f"clients of healthy regions moved: {moved}")
                with reporting.phase(f"TTL-honouring client of {failed_region} follows") as entry:
                    cached = dns_answers.resolver_fetcher(traffic[failed_region].client.resolver, dep.domain,
                                                          region=failed_region, cached=True)
                    follow = dns_answers.wait_until_excludes(cached, dep, failed_region,
                                                             session.dns_shift_budget(hc, through_resolver=True),
                                                             poll_s)
                    run.mark("client_dns_shift", follow.reached_at)
                    run.figures["client_dns_shift_s"] = round(follow.reached_at - fault.injected_at, 4)
                    # traffic of that client is served elsewhere for a while (a few polls), then restore
                    moved_at = follow.reached_at + 5 * poll_s
                    wait_for(lambda: time.time() >= moved_at, budget_s=6 * poll_s + session.follow_budget(),
                             poll_s=poll_s)
                    entry.update(client_dns_shift_s=run.figures["client_dns_shift_s"])
                run.mark("restore")
            run.evidence["fault_journal"] = fault.record.phase_dicts()
            with reporting.phase(f"client of {failed_region} back to its own region") as entry:
                wait_all_healthy(session, poll_s)
                budget = session.dns_shift_budget(hc, through_resolver=False)
                back = dns_answers.wait_until_includes(fetch[failed_region], dep, failed_region, budget, poll_s)
                run.mark("recovered", back.reached_at)
                after: dict[str, dict[str, Any]] = {c: {"dns": answered(c), "served_by": _served(session, c)} for c in clients}
                run.evidence["after"] = after
                entry.update(after=after)
                wrong = {c: v for c, v in after.items() if v["served_by"] != c}
                if wrong:
                    raise fail(run, Category.WRONG_REGION, f"after the restore clients not served by their own region: "
                                                    f"{wrong}")
            # Long enough for TTL-honouring clients to follow (cache = TTL x time scale).
            follow = run.marks["recovered"] + session.follow_budget()
            wait_for(lambda: time.time() >= follow, budget_s=2 * session.follow_budget(), poll_s=poll_s)
        finally:
            for t in traffic.values():
                t.stop()
                t.client.close()
        events = {c: t.events() for c, t in traffic.items()}
        run.traffic = [e for c in clients for e in events[c]]
        mine = events[failed_region]
        figures = metrics.summarize(mine, run.marks, restored_region=failed_region, time_scale=dep.time_scale)
        run.figures.update(
            acked_writes=sum(len(t.acked_ids()) for t in traffic.values()), errors=figures["errors"],
            client_outage_s=figures["client_outage_s"], failback_s=figures["failback_s"], rpo_lost_writes=None,
            replication_lag_p50_s=None, replication_lag_p99_s=None,
            served_by_client={c: _count_by_region(events[c]) for c in clients})
        away = [e for e in mine if e["ok"] and run.marks["client_dns_shift"] <= e["t_start"] < run.marks["restore"]]
        if not away or any(e["region"] == failed_region for e in away):
            raise fail(run, Category.WRONG_REGION, f"traffic of the {failed_region} client was not served by another region "
                                            f"while {failed_region} was down: {_count_by_region(away)}")
        if figures["failback_s"] is None:
            raise fail(run, Category.WRONG_REGION, f"traffic of the {failed_region} client did not return to "
                                            f"{failed_region} after the restore: {_count_by_region(mine)}")


def _count_by_region(events: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in events:
        if e["ok"]:
            out[str(e["region"])] = out.get(str(e["region"]), 0) + 1
    return out
