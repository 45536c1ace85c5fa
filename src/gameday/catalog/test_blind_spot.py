"""Game day: the blind spot of a shallow health check.

PutItem in the region that DNS answers is throttled to reserved concurrency 0 (every write
there fails: HTTP 500 behind API Gateway) while its Health function keeps answering 200.
For several times the documented detection time plus a TTL the harness watches Route 53,
DNS and traffic through the global domain: Route 53 keeps the region healthy, DNS keeps
answering it, and its writes fail. Then the concurrency is restored exactly.

Verdict (documented decision): this game day asks "does our health check see a broken write
path?". Either answer is a result, reported as a finding (row `findings`, listed in the
summary): on the reference backend (a Health function that only reads its environment) the
blind spot is confirmed and the verdict is pass: the game day found what it was run to find.
A deployment whose health check does exercise writes is detected, also a pass ("no blind
spot"). The verdict is fail only when the fault did not work (writes kept succeeding), traffic
never reached the region, or the restore failed.
"""

from __future__ import annotations

import time

import pytest

from gameday.errors import Category
from gameday.faults.concurrency import ThrottleFunction
from gameday.faults.watch import own_traffic
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
def test_blind_spot_put_throttled_health_ok(gameday) -> None:
    dep = gameday.deployment
    poll_s = gameday.poll_s
    # the routing decision (TestDNSAnswer), placed by the region map built from DNS at steady state
    resolver_now = dns_answers.TestDNSAnswer.for_deployment(gameday.clients.route53(), dep).fetcher()
    dns_answers.region_map(dep, gameday.resolver, refresh=True)
    steady_answer = resolver_now()
    steady = [r for r in dns_answers.regions_in(dep, steady_answer) if r]
    region = dep.region(steady[0] if steady else dep.regions[0].name)
    run = RunRecord(scenario="blind_spot", failed_region=region.name)
    hc = region.health_check_id
    interval, threshold = gameday.check_interval_s(hc), gameday.check_threshold(hc)
    # Four times the documented detection time, plus one TTL for DNS: long enough to be sure.
    window_s = 4 * interval * threshold * dep.time_scale + gameday.ttl_s
    # traffic needs a few writes acknowledged, and clients a routing change to follow
    settle_s = gameday.detection_budget(hc) + gameday.follow_budget() + 4 * 10 / (RATE * 0.5)
    say = Throttled(gameday)
    with reported_scenario(gameday, run, feature="Blind spot",
                           story="Writes fail in a region whose health check stays green", severity="normal"), \
            categorised_failures(run):
        with reporting.phase("steady state") as entry:
            entry.update(health=wait_all_healthy(gameday, poll_s),
                         dns_regions=dns_answers.mapped_regions(dep, steady_answer, what="TestDNSAnswer"))
        client = GlobalClient.from_deployment(dep, dns_mode="ttl")
        traffic = Traffic(client, rate=RATE, write_ratio=0.5, threads=8, on_request=own_traffic(dep).report)
        health_seen: list[dict] = []
        dns_seen: list[dict] = []
        try:
            traffic.start()
            wait_for(lambda: traffic.progress().acked_writes >= 10, budget_s=settle_s, poll_s=poll_s)
            with ThrottleFunction(dep, region.name, function="put", clients=gameday.clients,
                                  journal=gameday.journal) as fault:
                run.mark("fault", fault.injected_at)
                verified_t = time.time()  # the regional route answered "throttled": in effect from here
                run.evidence["fault"] = {"region": region.name, "function": fault.function,
                                         "reserved_concurrency": 0, "before": fault.before,
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
                        say.say(f"[{region.name}] PutItem throttled: Route 53 {status.failing}/{status.total} "
                                f"failing, DNS {dns_seen[-1]['regions']}, {time.monotonic() - started:.2f} s of "
                                f"{window_s:.2f} s")
                        return status.healthy is False

                    detected, _ = wait_for(still_healthy, budget_s=window_s, poll_s=poll_s)
                    if detected:
                        run.mark("detected", health_seen[-1]["t"])
                    entry.update(detected=detected, polls=len(health_seen))
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
        # Requests wholly inside the fault: started after the throttle took effect, answered before the
        # restore began (a slow request answered later may have reached the restored function).
        during = [e for e in events if verified_t <= e["t_start"] and e["t_end"] < restore_t]
        # A throttled write's 500 comes from API Gateway and says nothing of its region: every event
        # is placed by the address it went to (the region map), so it counts as the region's all the same.
        puts = [e for e in during if e["op"] == "put" and e["region"] == region.name]
        failed_puts = [e for e in puts if not e["ok"]]
        gets_ok = [e for e in during if e["op"] == "get" and e["ok"]]
        dns_kept = all(region.name in (p["regions"] or []) for p in dns_seen)
        never_failed = all(p["healthy"] is not False for p in health_seen)
        figures = metrics.summarize(events, run.marks, acked_ids=traffic.acked_ids(), time_scale=dep.time_scale)
        run.figures.update(
            acked_writes=figures["acked_writes"], errors=figures["errors"], client_outage_s=figures["client_outage_s"],
            rpo_lost_writes=None, replication_lag_p50_s=None, replication_lag_p99_s=None, failback_s=None,
            window_s=round(window_s, 4), writes_to_region=len(puts), failed_writes_to_region=len(failed_puts),
            reads_ok=len(gets_ok), health_polls=len(health_seen),
            max_failing_checkers=max((p["failing"] for p in health_seen), default=None),
            blind_spot=bool(never_failed and dns_kept and puts and len(failed_puts) == len(puts)),
            **{k: figures[k] for k in ("latency_before_p50_s", "latency_during_p50_s")})
        statuses = sorted({e["status"] for e in failed_puts if e["status"] is not None})
        if not puts:
            raise fail(run, Category.FAULT_NOT_EFFECTIVE, f"no write through {dep.domain} reached {region.name} while its "
                                                   f"PutItem was throttled (DNS: {dns_seen[-1:]})")
        if len(failed_puts) < len(puts):
            raise fail(run, Category.FAULT_NOT_EFFECTIVE, f"{len(puts) - len(failed_puts)} of {len(puts)} writes to "
                                                   f"{region.name} succeeded while its PutItem was throttled")
        aws_window = window_s / dep.time_scale
        if run.figures["blind_spot"]:
            run.findings.append(
                f"blind spot: for {window_s:.2f} s ({aws_window:.0f} s AWS, 4x the documented detection time plus a "
                f"TTL) every one of {len(puts)} writes through {dep.domain} to {region.name} failed (HTTP "
                f"{', '.join(map(str, statuses))}) while Route 53 kept its health check healthy (at most "
                f"{run.figures['max_failing_checkers']}/{health_seen[-1]['total']} checkers failing) and DNS kept "
                f"answering {region.name}: the health check probes /health, which never exercises PutItem")
        elif not never_failed:
            run.findings.append(f"no blind spot: Route 53 reported {region.name} unhealthy "
                                f"{run.marks['detected'] - fault_t:.2f} s after its PutItem was throttled")
        else:
            run.findings.append(f"Route 53 kept {region.name} healthy, but DNS stopped answering it "
                                f"({dns_seen[-1]['regions']}): writes failed only until clients followed")
