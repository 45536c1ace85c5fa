"""The RPO-0 game day of a multi-Region strongly consistent (MRSC) global table.

Clients write to the failing region's own API until the region goes down (a region outage by
default: every function throttled), and the moment the outage is in place every write the
region acknowledged is read, strongly, from each survivor: with MRSC none may be missing (RPO 0),
however close to the outage it was acknowledged. Before the outage, while those writes flow, the
same items are written at once through the failing region and a survivor: a write that meets
another region's write of its item is rejected (HTTP 409 from the reference PutItem, DynamoDB's
ReplicatedWriteConflictException), counted, and never mistaken for a lost write; whichever write
was acknowledged is what every region reads. Eventually consistent reads are taken beside the
strong ones, as evidence of what the strong read buys. Then the region is restored and must serve
writes again.
"""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gameday import timing
from gameday.errors import Category
from gameday.faults.region_outage import RegionOutage
from gameday.gamedays.failover import FaultFactory
from gameday.gamedays.session import GamedaySession
from gameday.gamedays.steps import Throttled, categorised_failures, fail, wait_all_healthy, write_item
from gameday.gamedays.under_load import read_items
from gameday.load.global_client import GlobalClient
from gameday.load.traffic import CONFLICT_STATUS, new_id_base
from gameday.records import RunRecord
from gameday.report import allure as reporting
from gameday.table_consistency import EVENTUAL, STRONG

WRITERS = 4                    # concurrent writers into the failing region
CONFLICT_PAIRS = 10            # items written at once through two regions
HTTP_TIMEOUT_S = (3.05, 10.0)


def table_consistency(session: GamedaySession, region: str | None = None) -> str:
    """The global table's MultiRegionConsistency as DynamoDB describes it (EVENTUAL when absent)."""
    name = region or session.deployment.regions[0].name
    table = session.clients.dynamodb(name).describe_table(TableName=session.deployment.table.name)["Table"]
    return str(table.get("MultiRegionConsistency") or EVENTUAL)


class _Writer:
    """Sequential new ids written into one region's API by a few threads until told to stop."""

    def __init__(self, client: GlobalClient, base: int) -> None:
        self.client = client
        self.events: list[dict[str, Any]] = []
        self._ids = itertools.count(base)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, name=f"mrsc-writer-{n}", daemon=True)
                         for n in range(WRITERS)]

    def start(self) -> _Writer:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=HTTP_TIMEOUT_S[0] + HTTP_TIMEOUT_S[1] + 1)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.events.append(write_item(self.client, next(self._ids), "before-outage"))

    def acked(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["ok"]]


class StrongConsistencyRpo:
    """One run of the RPO-0 game day for `failed_region`. `require_strong=False` runs it on any table
    (an eventually consistent one then shows the writes its survivors did not have yet)."""

    def __init__(self, session: GamedaySession, failed_region: str, *, scenario: str = "strong_consistency_rpo",
                 fault: FaultFactory = RegionOutage, require_strong: bool = True) -> None:
        self.s = session
        self.dep = session.deployment
        self.failed = self.dep.region(failed_region)
        self.survivors = [r.name for r in self.dep.regions if r.name != failed_region]
        self.fault_factory = fault
        self.require_strong = require_strong
        self.run = RunRecord(scenario=scenario, failed_region=failed_region)
        self.say = Throttled(session)
        self.http = {r.name: GlobalClient.for_region(self.dep, r.name, timeout=HTTP_TIMEOUT_S, pool_maxsize=WRITERS * 2)
                     for r in self.dep.regions}

    def execute(self) -> RunRecord:
        try:
            with categorised_failures(self.run):
                self._check_mode()
                writer = _Writer(self.http[self.failed.name], new_id_base()).start()
                try:
                    if self.run.evidence["multi_region_consistency"] == STRONG:
                        self._conflicts()    # on other tables concurrent writes are last writer wins
                    with self.fault_factory(self.dep, self.failed.name, clients=self.s.clients,
                                            journal=self.s.journal) as fault:
                        self.run.mark("fault", fault.injected_at)
                        writer.stop()
                        self.run.evidence["fault"] = {"region": self.failed.name, "fault": fault.fault_name,
                                                      "change": fault.describe(), "verified": fault.verified}
                        self._strong_reads(writer)
                        self.run.mark("restore")
                    self.run.evidence["fault_journal"] = fault.record.phase_dicts()
                finally:
                    writer.stop()
                    self.run.traffic = writer.events + self.run.traffic
                self._region_back()
        finally:
            for client in self.http.values():
                client.close()
        return self.run

    # -- steps ----------------------------------------------------------------------------
    def _check_mode(self) -> None:
        with reporting.phase("table consistency", self.run) as entry:
            mode = table_consistency(self.s, self.failed.name)
            entry.update(table=self.dep.table.name, multi_region_consistency=mode)
            self.run.evidence["multi_region_consistency"] = mode
            if mode != STRONG and self.require_strong:
                raise fail(self.run, Category.STEADY_STATE,
                           f"table {self.dep.table.name} is {mode}: RPO 0 needs MultiRegionConsistency {STRONG}")

    def _conflicts(self) -> None:
        """Items written at once through the failing region and a survivor, while the writers run."""
        other = self.survivors[0]
        base = new_id_base()
        with reporting.phase("conflicting writes from two regions", self.run) as entry:
            outcomes = []
            with ThreadPoolExecutor(2) as pool:
                for n in range(CONFLICT_PAIRS):
                    item_id = base + n
                    here = pool.submit(write_item, self.http[self.failed.name], item_id, f"{self.failed.name}-{n}")
                    there = pool.submit(write_item, self.http[other], item_id, f"{other}-{n}")
                    outcomes.append((item_id, here.result(), there.result()))
            events = [e for _, a, b in outcomes for e in (a, b)]
            self.run.traffic.extend(events)
            conflicts = sum(1 for e in events if e["status"] == CONFLICT_STATUS)
            failed = [e for e in events if not e["ok"] and e["status"] != CONFLICT_STATUS]
            views = {r.name: read_items(self.s.clients, self.dep, r.name, [i for i, _, _ in outcomes])
                     for r in self.dep.regions}
            wrong = {}
            for item_id, a, b in outcomes:
                acked = {e["name"] for e in (a, b) if e["ok"]}
                seen = {region: (view.get(item_id) or {}).get("name") for region, view in views.items()}
                if acked and (len(set(seen.values())) != 1 or next(iter(seen.values())) not in acked):
                    wrong[str(item_id)] = {"acknowledged": sorted(acked), "read": seen}
            self.run.figures["write_conflicts"] = conflicts
            entry.update(pairs=CONFLICT_PAIRS, conflicts=conflicts, other_errors=len(failed), wrong=len(wrong))
            self.run.evidence["conflicts"] = {"pairs": CONFLICT_PAIRS, "regions": [self.failed.name, other],
                                              "rejected_as_conflict": conflicts, "wrong": dict(list(wrong.items())[:10])}
            self.say.say(f"{conflicts} of {CONFLICT_PAIRS} items written from two regions at once were "
                         f"rejected as conflicts")
            if failed:
                raise fail(self.run, Category.WRITE_FAILED, f"{len(failed)} writes of conflicting items failed "
                                                            f"otherwise than as a conflict: {failed[0]['error']}")
            if wrong:
                raise fail(self.run, Category.LOST_WRITES,
                           f"{len(wrong)} items written from two regions at once do not read, strongly, as an "
                           f"acknowledged write in every region: {next(iter(wrong.items()))}")

    def _strong_reads(self, writer: _Writer) -> None:
        acked = writer.acked()
        with reporting.phase("strong reads from the survivors", self.run) as entry:
            if not acked:
                raise fail(self.run, Category.WRITE_FAILED, f"{self.failed.name} acknowledged no write before the outage")
            last_ack = max(e["t_end"] for e in acked)
            ids = [e["item_id"] for e in acked]
            started = time.time()
            strong = {r: read_items(self.s.clients, self.dep, r, ids) for r in self.survivors}
            self.run.mark("strong_read", started)
            eventual = {r: read_items(self.s.clients, self.dep, r, ids, consistent=False) for r in self.survivors}
            missing = {r: sorted(set(ids) - set(found)) for r, found in strong.items()}
            lost = sorted({i for m in missing.values() for i in m})
            self.run.figures.update(acked_writes=len(acked), rpo_lost_writes=len(lost),
                                    strong_read_after_s=round(started - last_ack, 4),
                                    errors=sum(1 for e in writer.events if not e["ok"]))
            self.run.evidence["strong_reads"] = {
                "acknowledged": len(acked), "last_ack_to_read_s": round(started - last_ack, 4),
                "missing_strong": {r: m[:20] for r, m in missing.items()},
                "missing_eventual": {r: len(set(ids) - set(found)) for r, found in eventual.items()}}
            entry.update(acknowledged=len(acked), missing=len(lost), read_after_s=round(started - last_ack, 4))
            if lost:
                raise fail(self.run, Category.LOST_WRITES,
                           f"RPO is not 0: {len(lost)} of {len(acked)} writes acknowledged by {self.failed.name} "
                           f"before the outage are missing from strongly consistent reads in "
                           f"{', '.join(r for r, m in missing.items() if m)} (ids: {lost[:10]})")

    def _region_back(self) -> None:
        """After the restore the region's API takes writes again, survivors read them strongly, and
        Route 53 reports every region healthy again."""
        with reporting.phase("region back", self.run) as entry:
            item_id = new_id_base()
            budget = timing.scaled(60.0, self.dep.time_scale, floor_s=5.0)
            poll = timing.measured_poll(lambda: write_item(self.http[self.failed.name], item_id, "after-restore"),
                                        until=lambda e: bool(e["ok"]), poll_s=self.s.poll_s, budget_s=budget)
            entry.update(budget_s=budget, **poll.figures())
            if not poll.reached:
                last = poll.value["error"] if poll.value else "no answer"
                raise fail(self.run, Category.STEADY_STATE, f"{self.failed.name} takes no write {budget:.1f} s after "
                                                            f"the restore (last: {last})")
            self.run.figures["failback_s"] = round(self.run.since("restore", self.run.mark("recovered",
                                                                                          poll.reached_at)), 4)
            found = {r: item_id in read_items(self.s.clients, self.dep, r, [item_id]) for r in self.survivors}
            entry.update(read_in_survivors=found, health=wait_all_healthy(self.s))   # Route 53 agrees it is back
            if not all(found.values()):
                raise fail(self.run, Category.LOST_WRITES, f"a write acknowledged by {self.failed.name} after the "
                                                           f"restore is missing from strong reads in "
                                                           f"{', '.join(r for r, f in found.items() if not f)}")
