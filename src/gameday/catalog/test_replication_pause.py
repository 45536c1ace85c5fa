"""Game day: replication paused, then resumed (local cloud only).

Run for each region in turn: while replication to and from it is held, clients write straight
to each region's API: ids only one side writes, and conflicting ids both sides write (first the
paused region, then the other, each acknowledged before the next). On resume every region must
converge to the same value per id: every acknowledged write of a non-conflicting id is
everywhere with its value, and each conflicting id holds the later acknowledged write
(last writer wins) in every region. Conflicts and the writes they overwrote are counted;
anything else missing or different is a lost write.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from gameday import timing
from gameday.errors import Category
from gameday.faults.replication import PauseReplication, replication_status
from gameday.gamedays.scenario_report import reported_scenario
from gameday.gamedays.steps import Throttled, categorised_failures, fail, wait_for, write_item
from gameday.gamedays.strong_consistency import table_consistency
from gameday.gamedays.under_load import read_items
from gameday.load.global_client import GlobalClient
from gameday.load.traffic import new_id_base
from gameday.observe import tables
from gameday.records import RunRecord
from gameday.report import allure as reporting
from gameday.table_consistency import STRONG

ONE_SIDED_PER_REGION = 100
CONFLICTING = 50
WRITERS = 8
HTTP_TIMEOUT_S = (3.05, 10.0)


@pytest.mark.destructive
@pytest.mark.local_only
def test_replication_paused_then_resumed(gameday, failed_region: str) -> None:
    if table_consistency(gameday) == STRONG:
        pytest.skip("replication pause is a fault of eventually consistent tables: with MultiRegionConsistency "
                    "STRONG every write is committed across regions before it is acknowledged")
    dep = gameday.deployment
    paused, other = dep.region(failed_region), dep.others(failed_region)[0]
    run = RunRecord(scenario="replication_pause", failed_region=paused.name)
    say = Throttled(gameday)
    with reported_scenario(gameday, run, feature="Replication paused",
                           story="Both sides write while replication is held; they converge on resume"), \
            categorised_failures(run):
        base = new_id_base()
        one_sided = {r.name: [base + i + 1_000 * n for i in range(ONE_SIDED_PER_REGION)]
                     for n, r in enumerate(dep.regions)}
        conflicting = [base + 100_000 + i for i in range(CONFLICTING)]
        events: list[dict[str, Any]] = []
        http = {r.name: GlobalClient.for_region(dep, r.name, timeout=HTTP_TIMEOUT_S, pool_maxsize=WRITERS)
                for r in dep.regions}

        def both_sides(item_id: int) -> list[dict[str, Any]]:
            first = write_item(http[paused.name], item_id, f"{paused.name}-first")
            second = write_item(http[other.name], item_id, f"{other.name}-second")
            return [first, second]

        with PauseReplication(dep, paused.name, clients=gameday.clients, journal=gameday.journal,
                              on_event=lambda kind, data: gameday.progress.say(f"[{data['region']}] replication "
                                                                               f"{kind.replace('_', ' ')}")) as fault:
            run.mark("fault", fault.injected_at)
            with reporting.phase("write on both sides while paused") as entry:
                with ThreadPoolExecutor(WRITERS) as pool:
                    jobs = [pool.submit(write_item, http[r.name], i, f"{r.name}-only")
                            for r in dep.regions for i in one_sided[r.name]]
                    pairs = [pool.submit(both_sides, i) for i in conflicting]
                    events += [j.result() for j in jobs]
                    events += [e for p in pairs for e in p.result()]
                acked = [e for e in events if e["ok"]]
                entry.update(writes=len(events), acked=len(acked))
                say.say(f"{len(acked)} of {len(events)} writes acknowledged while replication is paused")
            with reporting.phase("replication held") as entry:
                # Longer than replication normally takes: nothing may have crossed to or from the
                # paused region (with three or more regions, the others still replicate among themselves).
                hold_s = timing.scaled(20.0, dep.time_scale, floor_s=0.5)
                crossed: dict[str, int] = {}

                def held_from(region: str, source: str | None) -> bool:
                    return source != region and paused.name in (region, source)

                def crossed_now() -> bool:
                    for r in dep.regions:
                        foreign = [e["item_id"] for e in acked if held_from(r.name, e["region"])
                                   and e["item_id"] not in conflicting]
                        crossed[r.name] = len(read_items(gameday.clients, dep, r.name, foreign))
                    return any(crossed.values())

                leaked, _ = wait_for(crossed_now, budget_s=hold_s, poll_s=gameday.poll_s)
                status = replication_status(dep.control_url)
                run.evidence["while_paused"] = {"crossed": crossed, "held": status.get("held"),
                                                "paused": status.get("paused")}
                entry.update(crossed=crossed, held=status.get("held"))
                if leaked:
                    raise fail(run, Category.FAULT_NOT_EFFECTIVE, f"replication was paused for {paused.name}, yet items "
                                                           f"crossed regions: {crossed}")
            run.mark("restore")
        run.evidence["fault_journal"] = fault.record.phase_dicts()
        run.evidence["resume"] = fault.restore_detail

        expected: dict[int, str] = {}          # id -> the value every region must end with
        overwritten = 0
        for e in sorted(acked, key=lambda e: e["t_end"]):
            if e["item_id"] in expected:
                overwritten += 1               # last writer wins: the earlier acknowledged value goes
            expected[e["item_id"]] = e["name"]
        with reporting.phase("converge after resume") as entry:
            views: dict[str, dict[int, dict[str, Any]]] = {}

            def converged() -> bool:
                for r in dep.regions:
                    views[r.name] = read_items(gameday.clients, dep, r.name, expected)
                wrong = sum(1 for r in dep.regions for i, v in expected.items()
                            if (views[r.name].get(i) or {}).get("name") != v)
                say.say(f"convergence: {wrong} (region, id) pairs not yet as expected")
                return wrong == 0

            budget = tables.replication_budget(dep)
            done, _ = wait_for(converged, budget_s=budget, poll_s=gameday.poll_s)
            run.mark("recovered")
            convergence_s = run.marks["recovered"] - run.marks["restore"]
            entry.update(converged=done, convergence_s=convergence_s)

        differing = {i for i in expected if len({(views[r.name].get(i) or {}).get("name")
                                                  for r in dep.regions}) > 1}
        missing = {r.name: sorted(i for i in expected if i not in views[r.name]) for r in dep.regions}
        wrong_value = sorted(i for i in expected for r in dep.regions
                             if i in views[r.name] and views[r.name][i].get("name") != expected[i])
        lost = sorted({i for ids in missing.values() for i in ids} | set(wrong_value))
        conflicts = [i for i in conflicting if sum(1 for e in acked if e["item_id"] == i) > 1]
        run.traffic = events
        run.figures.update(
            acked_writes=len(acked), errors=len(events) - len(acked), conflicts=len(conflicts),
            overwritten_by_lww=overwritten, rpo_lost_writes=len(lost), rpo_missing_ids=lost[:1000],
            convergence_s=round(convergence_s, 4) if done else None, diverged_after_resume=len(differing),
            replication_lag_p50_s=None, replication_lag_p99_s=None, client_outage_s=None, failback_s=None,
            held_deliveries=run.evidence["while_paused"]["held"])
        run.evidence["conflict_winners"] = {str(i): {r.name: (views[r.name].get(i) or {}).get("name")
                                                     for r in dep.regions} for i in conflicts[:10]}
        if len(acked) < len(events):
            raise fail(run, Category.WRITE_FAILED, f"{len(events) - len(acked)} of {len(events)} direct regional writes "
                                            f"were not acknowledged while replication was paused")
        if lost or not done:
            raise fail(run, Category.LOST_WRITES, f"after resume {len(lost)} acknowledged writes are missing or hold "
                                           f"another value than last-writer-wins gives (missing: "
                                           f"{ {r: len(v) for r, v in missing.items()} }; ids: {lost[:20]})")
        if len(conflicts) != CONFLICTING:
            raise fail(run, Category.WRITE_FAILED, f"only {len(conflicts)} of {CONFLICTING} conflicting ids were written on "
                                            f"both sides")
