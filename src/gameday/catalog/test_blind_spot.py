"""Game day: does the region's health check see its writes fail?

Run for each region: every write in it is denied (WriteImpairment: an inline Deny of
dynamodb:PutItem on the region's table replica for the execution roles of its writing functions)
while traffic flows through the global domain, from a client of that region where the answer
depends on the client (latency records), else from the harness. The harness watches Route 53, DNS
and the traffic for the detection budget plus the time clients take to follow, then restores the
roles exactly. A region no client is sent to (a failover SECONDARY) is a standby: its verdict is
Route 53's alone, since a failover would send every client to it.

Verdict: pass when the health check caught it (Route 53 reported the region unhealthy and DNS
stopped answering it within the budget: a deep /health that writes, as the reference deployment's
does by default). Fail with category `blind_spot` when traffic kept flowing to the region while
its writes failed: the message names the health check's target (GetHealthCheck: FQDN and
ResourcePath) and how long, in local and AWS-equivalent seconds (the article's shallow /health,
`gameday local up --health shallow`). Also a fail: the fault did not work (a write succeeded or
none reached the region), DNS never moved after detection, or the restore failed. A standby
fails `blind_spot` when its health check stayed healthy while its writes failed.
"""

from __future__ import annotations

import time

import pytest

from gameday.errors import Category
from gameday.faults.watch import own_traffic
from gameday.faults.write_impairment import WriteImpairment
from gameday.gamedays.scenario_report import reported_scenario
from gameday.gamedays.steps import Throttled, categorised_failures, fail, wait_all_healthy, wait_for
from gameday.load.global_client import GlobalClient
from gameday.load.traffic import Traffic
from gameday.measure import metrics
from gameday.observe import dns_answers
from gameday.records import RunRecord
from gameday.report import allure as reporting

RATE = 60.0


@pytest.mark.destructive
def test_blind_spot_writes_fail_health_checked(gameday, failed_region: str) -> None:
    dep = gameday.deployment
    poll_s = gameday.poll_s
    region = dep.region(failed_region)
    # The clients of the region where the answer depends on the client (latency records) and the
    # harness knows where one is; else the harness's own.
    client_region = region.name if dep.routes_by_client and region.client_address else None
    # the routing decision (TestDNSAnswer) for those clients, placed by the region map built from DNS
    testdns = dns_answers.TestDNSAnswer.for_deployment(gameday.clients.route53(), dep)
    resolver_now = testdns.fetcher_for_client_in(region) if client_region else testdns.fetcher()
    dns_answers.region_map(dep, gameday.resolver, refresh=True)
    steady_answer = resolver_now()
    # A region no client is sent to (a failover SECONDARY) is a standby: no traffic can show its
    # writes failing, but a health check that misses it lets a failover send every client there.
    standby = region.name not in dns_answers.regions_in(dep, steady_answer)
    run = RunRecord(scenario="blind_spot", failed_region=region.name)
    hc = region.health_check_id
    # What Route 53 may take to see it, plus what clients take to follow: a health check that sees
    # writes fail has moved the traffic away by then.
    window_s = gameday.detection_budget(hc) + gameday.follow_budget()
    # traffic needs a few writes acknowledged, and clients a routing change to follow
    settle_s = gameday.detection_budget(hc) + gameday.follow_budget() + 4 * 10 / (RATE * 0.5)
    say = Throttled(gameday)
    with reported_scenario(gameday, run, feature="Blind spot",
                           story="Writes fail in a region whose health check stays green", severity="normal"), \
            categorised_failures(run):
        with reporting.phase("steady state") as entry:
            entry.update(health=wait_all_healthy(gameday, poll_s),
                         dns_regions=dns_answers.mapped_regions(dep, steady_answer, what="TestDNSAnswer"))
            entry.update(standby=standby)
        client = GlobalClient.from_deployment(dep, dns_mode="ttl", region=client_region)
        traffic = Traffic(client, rate=RATE, write_ratio=0.5, threads=8, on_request=own_traffic(dep).report)
        health_seen: list[dict] = []
        dns_seen: list[dict] = []
        try:
            traffic.start()
            wait_for(lambda: traffic.progress().acked_writes >= 10, budget_s=settle_s, poll_s=poll_s)
            with WriteImpairment(dep, region.name, clients=gameday.clients, journal=gameday.journal) as fault:
                run.mark("fault", fault.injected_at)
                verified_t = time.time()  # a regional write answered 5xx: in effect from here
                run.evidence["fault"] = {"region": region.name, "functions": fault.functions,
                                         "denied": "dynamodb:PutItem", "before": fault.before,
                                         "verified": fault.verified}
                with reporting.phase("watch Route 53, DNS and traffic") as entry:
                    started = time.monotonic()

                    def still_healthy() -> bool:
                        status = gameday.health.health_status(region.health_check_id)
                        answers = resolver_now()
                        health_seen.append({"t": time.time(), "region": region.name, "failing": status.failing,
                                            "total": status.total, "healthy": status.healthy})
                        dns_seen.append({"t": time.time(), "answers": answers,
                                         "regions": dns_answers.regions_in(dep, answers)})
                        say.say(f"[{region.name}] writes denied: Route 53 {status.failing}/{status.total} "
                                f"failing, DNS {dns_seen[-1]['regions']}, {time.monotonic() - started:.2f} s of "
                                f"{window_s:.2f} s")
                        if status.healthy is False and "detected" not in run.marks:
                            run.mark("detected", health_seen[-1]["t"])
                        return status.healthy is False and (standby or region.name not in (dns_seen[-1]["regions"] or []))

                    moved, _ = wait_for(still_healthy, budget_s=window_s, poll_s=poll_s)
                    if moved and not standby:   # a standby was never answered: no DNS shift to mark
                        run.mark("dns_shift", dns_seen[-1]["t"])
                    entry.update(detected="detected" in run.marks, dns_moved=moved and not standby,
                                 polls=len(health_seen))
                run.mark("restore")
            run.evidence["fault_journal"] = fault.record.phase_dicts()
            run.evidence["restore"] = fault.restore_detail
            # Traffic after the restore: the writes recover (the end of the client-visible outage).
            wait_for(lambda: time.time() >= run.marks["restore"] + max(0.5, gameday.follow_budget()),
                     budget_s=settle_s + max(0.5, gameday.follow_budget()), poll_s=poll_s)
        finally:
            traffic.stop()
            client.close()
        events = traffic.events()
        run.traffic = events
        run.evidence["health_observations"] = health_seen
        run.evidence["dns_answers"] = dns_seen[-20:]
        fault_t, restore_t = run.marks["fault"], run.marks["restore"]
        # Requests wholly inside the fault: started after the Deny took effect, answered before the
        # restore began (a slow request answered later may have been written after the restore).
        during = [e for e in events if verified_t <= e["t_start"] and e["t_end"] < restore_t]
        # A denied write's 500 says nothing of its region: every event is placed by the address it
        # went to (the region map), so it counts as the region's all the same.
        puts = [e for e in during if e["op"] == "put" and e["region"] == region.name]
        failed_puts = [e for e in puts if not e["ok"]]
        gets_ok = [e for e in during if e["op"] == "get" and e["ok"]]
        detected, moved = "detected" in run.marks, "dns_shift" in run.marks
        figures = metrics.summarize(events, run.marks, acked_ids=traffic.acked_ids(), time_scale=dep.time_scale)
        run.figures.update(
            acked_writes=figures["acked_writes"], errors=figures["errors"], client_outage_s=figures["client_outage_s"],
            rpo_lost_writes=None, replication_lag_p50_s=None, replication_lag_p99_s=None, failback_s=None,
            window_s=round(window_s, 4), writes_to_region=len(puts), failed_writes_to_region=len(failed_puts),
            reads_ok=len(gets_ok), health_polls=len(health_seen),
            max_failing_checkers=max((p["failing"] for p in health_seen), default=None),
            detection_s=round(run.marks["detected"] - fault_t, 4) if detected else None,
            dns_shift_s=round(run.marks["dns_shift"] - run.marks["detected"], 4) if moved and detected else None,
            blind_spot=bool(puts and not moved),
            **{k: figures[k] for k in ("latency_before_p50_s", "latency_during_p50_s")})
        statuses = sorted({e["status"] for e in failed_puts if e["status"] is not None})
        run.figures["standby"] = standby
        config = gameday.check_config(hc)
        probed = f"{config.get('Type', 'HTTPS')} {config.get('FullyQualifiedDomainName') or config.get('IPAddress')}" \
                 f"{config.get('ResourcePath') or '/'}"
        lasted = restore_t - verified_t
        if standby:
            run.figures["blind_spot"] = not detected
            _standby_verdict(run, dep, region.name, hc, probed, lasted, fault_t, detected, health_seen)
            return
        if not puts:
            raise fail(run, Category.FAULT_NOT_EFFECTIVE, f"no write through {dep.domain} reached {region.name} while "
                                                          f"its writes were denied (DNS: {dns_seen[-1:]})")
        if len(failed_puts) < len(puts):
            raise fail(run, Category.FAULT_NOT_EFFECTIVE, f"{len(puts) - len(failed_puts)} of {len(puts)} writes to "
                                                          f"{region.name} succeeded while its writes were denied")
        if moved:
            run.findings.append(f"no blind spot: Route 53 reported {region.name} unhealthy "
                                f"{run.marks['detected'] - fault_t:.2f} s after its writes were denied, and DNS "
                                f"stopped answering it {run.marks['dns_shift'] - fault_t:.2f} s after")
            return
        if detected:
            raise fail(run, Category.NO_DNS_SHIFT, f"Route 53 reported {region.name} unhealthy after its writes were "
                                                   f"denied, but DNS kept answering it for {lasted:.2f} s "
                                                   f"({lasted / dep.time_scale:.0f} s AWS)")
        raise fail(run, Category.BLIND_SPOT,
                   f"traffic kept flowing to {region.name} while its writes failed: for {lasted:.2f} s "
                   f"({lasted / dep.time_scale:.0f} s AWS) every one of {len(puts)} writes through {dep.domain} to "
                   f"{region.name} failed (HTTP {', '.join(map(str, statuses))}) while its health check "
                   f"{hc} ({probed}) stayed healthy (at most {run.figures['max_failing_checkers']}/"
                   f"{health_seen[-1]['total'] if health_seen else '?'} checkers failing) and DNS kept answering it: "
                   f"the health check does not exercise the region's writes")


def _standby_verdict(run: RunRecord, dep, region: str, hc: str, probed: str, lasted: float, fault_t: float,
                     detected: bool, health_seen: list[dict]) -> None:
    """A standby's writes failing (its write impairment verified by a regional write): pass when
    Route 53 reported it unhealthy, so a failover would not send clients there; else blind_spot."""
    if detected:
        run.findings.append(f"no blind spot: Route 53 reported the standby {region} unhealthy "
                            f"{run.marks['detected'] - fault_t:.2f} s after its writes were denied (a failover "
                            f"would not send clients to it)")
        return
    raise fail(run, Category.BLIND_SPOT,
               f"the standby {region}'s writes failed for {lasted:.2f} s ({lasted / dep.time_scale:.0f} s AWS) "
               f"while its health check {hc} ({probed}) stayed healthy (at most "
               f"{run.figures['max_failing_checkers']}/{health_seen[-1]['total'] if health_seen else '?'} checkers "
               f"failing): a failover would send every client to a region whose writes fail; the health check "
               f"does not exercise the region's writes")
