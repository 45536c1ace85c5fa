"""The failover game day as one procedure, shared by the scenarios:

steady state -> break the region (flip its Health to 404 by default, or any fault on the base
protocol, e.g. a region outage) -> Route 53 reports the region unhealthy (detection)
-> DNS stops answering it (DNS shift) -> a write through the global domain lands in a
surviving region (evidence: the item as read in every region) -> read back -> restore
-> healthy again and DNS answers as before -> the item reached the restored region.

Every wait is a measured poll (timing.measured_poll); every verdict carries what was seen. A
failed step raises ScenarioFailed (an AssertionError) whose message starts with its category.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from gameday.deployment import FAILOVER_PAIRS
from gameday.errors import Category, ScenarioError, ScenarioFailed, categorised
from gameday.faults.base import JournalledFault
from gameday.faults.flip_health import FlipHealth
from gameday.faults.watch import own_traffic
from gameday.gamedays.session import GamedaySession
from gameday.load.global_client import GlobalClient, GlobalRequestError
from gameday.observe import dns_answers, landing, tables
from gameday.observe.resolver import Resolver
from gameday.observe.route53 import DetectionTimeout
from gameday.records import RunRecord
from gameday.report import allure as reporting

ITEM_NAME_PREFIX = "gameday"
#: What breaks the region: a fault class of the base protocol, made as Fault(deployment, region, clients=,
#: journal=, on_event=). FlipHealth (the article's test: routing moves while the region still serves)
#: or RegionOutage (every request to the region fails).
FaultFactory = Callable[..., JournalledFault]


def new_item_id() -> int:
    """Unique enough across runs and workers, and a valid DynamoDB number."""
    return int(time.time() * 1_000_000) % 10**15


class RegionFailover:
    """One run of the failover game day for `failed_region`."""

    def __init__(self, session: GamedaySession, failed_region: str, *, scenario: str = "region_failover",
                 between_detection_and_write: Callable[[RunRecord], None] | None = None,
                 fault: FaultFactory = FlipHealth) -> None:
        self.s = session
        self.fault_factory = fault
        self.dep = session.deployment
        self.failed = self.dep.region(failed_region)
        self.run = RunRecord(scenario=scenario, failed_region=failed_region)
        self.poll_s = session.poll_s
        self.testdns = dns_answers.TestDNSAnswer.for_deployment(session.clients.route53(), self.dep)
        # Where the answer depends on the client (latency records), the harness is a client of the
        # failed region when it knows where one is (its client_address): those are the clients the
        # failover is for. Where a partner is named (failover_pairs), they must land in it.
        self.client_region = failed_region if self.dep.routes_by_client and self.failed.client_address else None
        self.expected_survivor = self.dep.expected_survivor(failed_region) \
            if self.dep.routing == FAILOVER_PAIRS and self.client_region else None
        # The routing decision now (TestDNSAnswer: no cache anywhere), and what a client honouring the TTL sees.
        self.dns_now = self.testdns.fetcher_for_client_in(self.failed) if self.client_region \
            else self.testdns.fetcher()
        self.client = GlobalClient.from_deployment(self.dep, dns_mode="ttl", region=self.client_region)
        self.dns_client = dns_answers.resolver_fetcher(self.client.resolver, self.dep.domain, cached=True,
                                                       region=self.client_region)
        # Where the failed region's DNS shift is watched: set at steady state (None: not applicable).
        self.shift_now: dns_answers.Fetch | None = self.dns_now
        self.shift_client: dns_answers.Fetch | None = self.dns_client
        self.steady_regions: list[str] = []
        self._hook = between_detection_and_write

    # -- the procedure --------------------------------------------------------------
    def execute(self) -> RunRecord:
        try:
            self._steady_state()
            with self.fault_factory(self.dep, self.failed.name, clients=self.s.clients, journal=self.s.journal,
                                    on_event=self._on_fault_event) as fault:
                self.run.mark("fault", fault.injected_at)
                self.run.evidence["fault"] = {"region": self.failed.name, "fault": fault.fault_name,
                                              "function": fault.target().get("function"),
                                              "change": fault.describe(), "verified": fault.verified}
                self._detect()
                self._dns_shift()
                if self._hook is not None:
                    self._hook(self.run)
                item_id = self._write_through_domain()
                self._verify_where_written(item_id)
                self._read_back(item_id)
                self.run.mark("restore")
            self.run.evidence["fault_journal"] = fault.record.phase_dicts()
            self._recover()
            self._replicated_to_restored(item_id)
        except ScenarioFailed as exc:
            self.run.fail(exc.category, str(exc))
            raise
        except ScenarioError as exc:  # a probe's timeout, an ineffective fault, a failed rollback
            self.run.fail(exc.category, categorised(exc.category, str(exc)))
            self._evidence_of(exc)
            raise ScenarioFailed(exc.category, str(exc)) from exc
        except BaseException as exc:
            self.run.fail(Category.HARNESS_ERROR, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self.client.close()
            self._record_ground_truth()
        return self.run

    def _record_ground_truth(self) -> None:
        """On the local cloud, what really happened and when, beside what the harness measured."""
        fault_t = self.run.marks.get("fault")
        if not self.s.truth.available or fault_t is None:
            return
        try:
            health = self.s.ground_truth("health_status")
            dns = self.s.ground_truth("dns_answer")
        except Exception as exc:  # evidence only: never turn a verdict into a harness error
            self.run.evidence["ground_truth_error"] = f"{type(exc).__name__}: {exc}"
            return
        hc = self.failed.health_check_id
        domain = self.dep.domain.rstrip(".").lower()
        unhealthy = [e["t"] for e in health if e["health_check_id"] == hc and not e["healthy"] and e["t"] >= fault_t]
        shifted = [e["t"] for e in dns if e["name"].rstrip(".").lower() == domain and e["t"] >= fault_t
                   and e.get("region") not in (None, self.failed.name)]
        restore_t = self.run.marks.get("restore")
        healthy = [e["t"] for e in health if e["health_check_id"] == hc and e["healthy"]
                   and restore_t is not None and e["t"] >= restore_t]
        truth = {"unhealthy_at": unhealthy[0] if unhealthy else None,
                 "dns_shift_at": shifted[0] if shifted else None,
                 "healthy_again_at": healthy[0] if healthy else None}
        self.run.evidence["ground_truth"] = truth
        if truth["unhealthy_at"] is not None:
            self.run.figures["truth_detection_s"] = round(truth["unhealthy_at"] - fault_t, 4)
        if truth["dns_shift_at"] is not None:
            self.run.figures["truth_dns_shift_s"] = round(truth["dns_shift_at"] - fault_t, 4)

    def _steady_state(self) -> None:
        with reporting.phase("steady state") as entry:
            for region in self.dep.regions:
                try:
                    wait = self.s.health.wait_until(region.health_check_id, healthy=True, region=region.name,
                                                    budget_s=self.s.detection_budget(region.health_check_id),
                                                    poll_s=self.poll_s, on_progress=self.s.progress.health)
                except DetectionTimeout as exc:
                    raise ScenarioFailed(Category.STEADY_STATE, f"steady state: {region.name} is not healthy before "
                                                                f"any fault: {_reasons(exc)}") from exc
                entry.setdefault("health", {})[region.name] = f"{wait.final.total - wait.final.failing}/{wait.final.total} healthy"
            dns_answers.region_map(self.dep, self.s.resolver, refresh=True)
            answers = self.dns_now()
            self.steady_regions = dns_answers.mapped_regions(self.dep, answers, what="TestDNSAnswer")
            response = self.client.get("/health")
            if response.status >= 400:
                raise ScenarioFailed(Category.STEADY_STATE, f"steady state: GET {self.dep.global_url}/health "
                                                            f"answered {response.status} from {response.served_by}")
            if response.region is None:
                raise ScenarioFailed(Category.STEADY_STATE, f"steady state: GET {self.dep.global_url}/health went to "
                                                            f"{response.address}, which is no region's address "
                                                            f"(what DNS answers for each region: "
                                                            f"{dns_answers.region_map(self.dep).lookups})")
            self._choose_shift_source()
            self.run.evidence["steady_state"] = {
                "client_of": self.client_region or "the harness's location",
                "dns_answer": answers, "dns_regions": self.steady_regions,
                "resolver_answer": self.dns_client(), "served_by": response.served_by,
                "address": response.address, "header_region": response.header_region,
                "region_map": dns_answers.region_map(self.dep).public(), "health": entry.get("health")}
            entry.update(dns_regions=self.steady_regions)

    def _choose_shift_source(self) -> None:
        """Where the failed region's DNS shift can be seen. If the harness's clients are served by it,
        their answer; else the answer for a client in that region (TestDNSAnswer with its client
        subnet, and a resolver sending it); if no client anywhere is sent there (a failover
        SECONDARY), there is no shift to measure and the row says so."""
        failed = self.failed
        if failed.name in self.steady_regions:
            self.run.evidence["dns_shift_source"] = "the harness's clients"
            return
        subnet, mask = dns_answers.client_subnet_of(failed)
        if subnet:
            fetch = self.testdns.fetcher_with_mask(subnet, mask)
            regions = dns_answers.regions_in(self.dep, fetch())
            if failed.name in regions:
                resolver = Resolver.from_deployment(self.dep, cache=True)
                self.shift_now = fetch
                self.shift_client = dns_answers.resolver_fetcher(resolver, self.dep.domain, region=failed.name)
                self.run.evidence["dns_shift_source"] = f"a client in {failed.name} (client subnet {subnet}{'/' + str(mask) if mask else ''})"
                return
        self.shift_now = self.shift_client = None
        self.run.evidence["dns_shift_not_applicable"] = (
            f"DNS answers {self.steady_regions} at steady state, and no client "
            f"{'in ' + failed.name + ' (subnet ' + subnet + ') ' if subnet else ''}is sent to {failed.name}: "
            f"there is no shift away from it to measure")

    def _on_fault_event(self, kind: str, data: dict[str, Any]) -> None:
        self.run.emit(kind, t=data.get("t"), region=data.get("region"), fault=data.get("fault"),
                      function=data.get("function"))
        self.s.progress.say(f"[{data.get('region')}] {kind.replace('_', ' ')} ({data.get('function')})")

    def _detect(self) -> None:
        with reporting.phase("detect") as entry:
            hc = self.failed.health_check_id
            shift = self.shift_now   # the routing decision confirms the rebuilt status (None: no shift to see)
            wait = self.s.health.wait_until(hc, healthy=False, region=self.failed.name, budget_s=self.s.detection_budget(hc),
                                            poll_s=self.poll_s, on_progress=self.s.progress.health,
                                            confirm=None if shift is None else
                                            lambda: _excludes(self.dep, shift(), self.failed.name))
            detection = self.run.since("fault", self.run.mark("detected", wait.reached_at))
            self.run.figures.update(detection_s=round(detection, 4), detection_budget_s=round(wait.budget_s, 3),
                                    poll_s=self.poll_s, detection_max_poll_gap_s=round(wait.max_gap_s, 4))
            self.run.figures.update(wait.figures(self.run.marks["fault"]))   # the four moments, API figures
            if wait.flags:
                self.run.evidence["detection_flags"] = wait.flags
            self.run.evidence["health_observations"] = [
                {"t": p.t, "region": self.failed.name, "failing": p.failing, "total": p.total} for p in wait.history]
            self.run.evidence["health_at_detection"] = [
                {"region": o.region, "ip": o.ip_address, "status": o.status} for o in wait.final.observations]
            entry.update(detection_s=detection, failing=f"{wait.final.failing}/{wait.final.total}")

    def _dns_shift(self) -> None:
        with reporting.phase("DNS shift") as entry:
            if self.shift_now is None or self.shift_client is None:
                self.run.figures.update(dns_shift_s=None, client_dns_shift_s=None)
                entry.update(dns_shift_s="not applicable", reason=self.run.evidence.get("dns_shift_not_applicable"))
                return
            hc = self.failed.health_check_id
            budget = self.s.dns_shift_budget(hc, through_resolver=False)
            self.s.progress.waiting(f"DNS: still answering {self.failed.name}", budget_s=budget)
            wait = dns_answers.wait_until_excludes(self.shift_now, self.dep, self.failed.name, budget, self.poll_s)
            self.run.figures["dns_shift_s"] = round(self.run.since("fault", self.run.mark("dns_shift", wait.reached_at)), 4)
            # A client honouring the TTL follows only when its cache expires (the client-visible shift).
            client_wait = dns_answers.wait_until_excludes(self.shift_client, self.dep, self.failed.name,
                                                          self.s.dns_shift_budget(hc, through_resolver=True),
                                                          self.poll_s)
            self.run.figures["client_dns_shift_s"] = round(
                self.run.since("fault", self.run.mark("client_dns_shift", client_wait.reached_at)), 4)
            self.run.evidence["dns_answers"] = [
                {"t": p.t, "answers": p.answers, "regions": p.regions} for p in wait.history]
            self.run.evidence["testdnsanswer_after_shift"] = self.testdns.answer()
            entry.update(dns_shift_s=self.run.figures["dns_shift_s"], answer=wait.answers)

    def _write_through_domain(self) -> int:
        with reporting.phase("write through the global domain") as entry:
            item_id = new_item_id()
            body = {"id": item_id, "name": f"{ITEM_NAME_PREFIX}-{self.failed.name}-down"}
            feed = own_traffic(self.dep)   # the error-rate stop condition counts the game day's own requests
            try:
                response = self.client.post("/item", json=body)
            except GlobalRequestError as exc:
                feed.report(time.time(), None, str(exc))
                raise ScenarioFailed(Category.WRITE_FAILED, f"POST {self.dep.global_url}/item got no answer: {exc}") from exc
            feed.report(time.time(), response.status)
            served_by = response.served_by
            self.run.survivor = response.region
            self.run.evidence["write"] = {"request": body, "status": response.status, "served_by": served_by,
                                          "address": response.address, "header_region": response.header_region,
                                          "body": response.response.text[:500]}
            entry.update(status=response.status, served_by=served_by)
            if response.status != 200:
                raise ScenarioFailed(Category.WRITE_FAILED, f"POST {self.dep.global_url}/item answered {response.status} "
                                                     f"from {served_by}: {response.response.text[:200]}")
            if response.region == self.failed.name:
                raise ScenarioFailed(Category.WRONG_REGION, f"the write was served by the failed region {self.failed.name} "
                                                     f"after DNS shifted away from it")
            if self.expected_survivor and response.region != self.expected_survivor:
                raise ScenarioFailed(Category.WRONG_REGION, f"a client of {self.failed.name} was served by "
                                                            f"{response.region}, but its failover partner is "
                                                            f"{self.expected_survivor}")
            return item_id

    def _verify_where_written(self, item_id: int) -> None:
        with reporting.phase("verify where the write landed") as entry:
            acked_at = time.time()
            key = {"id": item_id}
            survivor = self.run.survivor
            if survivor is None:
                raise ScenarioFailed(Category.WRONG_REGION, f"the write went to {self.run.evidence['write']['address']}, "
                                                            f"which is no region's address")
            try:
                proved = landing.prove_landing(self.s.clients, self.dep, key, survivor, acked_at, poll_s=self.poll_s)
            except ScenarioError as exc:
                self.run.evidence["item_by_region"] = tables.items_by_region(self.s.clients, self.dep, key)
                seen = getattr(exc, "landing", None)
                if seen is not None:
                    self.run.evidence["landing"] = seen.evidence()
                raise ScenarioFailed(exc.category, str(exc)) from exc
            self.run.evidence["item_by_region"] = tables.items_by_region(self.s.clients, self.dep, key)
            self.run.evidence["landing"] = proved.evidence()
            entry.update(attribute=self.dep.table.region_attribute, written_region=proved.claimed,
                         landed=proved.region, proof=proved.proof)

    def _read_back(self, item_id: int) -> None:
        with reporting.phase("read back through the global domain") as entry:
            feed = own_traffic(self.dep)
            try:
                response = self.client.get(f"/item/{item_id}")
            except GlobalRequestError as exc:
                feed.report(time.time(), None, str(exc))
                raise
            feed.report(time.time(), response.status)
            entry.update(status=response.status, served_by=response.served_by)
            self.run.evidence["read_back"] = {"status": response.status, "served_by": response.served_by,
                                              "body": response.response.text[:500]}
            if response.status != 200:
                raise ScenarioFailed(Category.LOST_WRITES, f"GET /item/{item_id} answered {response.status} from "
                                                    f"{response.served_by}")

    def _recover(self) -> None:
        with reporting.phase("recover") as entry:
            restore_t = self.run.marks["restore"]
            wait = self.s.health.wait_until(self.failed.health_check_id, healthy=True, region=self.failed.name,
                                            budget_s=self.s.detection_budget(self.failed.health_check_id),
                                            poll_s=self.poll_s, on_progress=self.s.progress.health)
            self.run.mark("healthy_again", wait.reached_at)
            self.run.evidence["health_observations_recovery"] = [
                {"t": p.t, "region": self.failed.name, "failing": p.failing, "total": p.total} for p in wait.history]
            budget = self.s.dns_shift_budget(self.failed.health_check_id, through_resolver=False)
            expected = set(self.steady_regions)
            if not expected:  # steady state guarantees one; never compare two empty sets
                raise ScenarioFailed(Category.HARNESS_ERROR, "recovery: no steady-state region to come back to")
            back = dns_answers.wait_until_answer(
                self.dns_now, lambda answers: dns_answers.all_mapped(self.dep, answers)
                and set(r for r in dns_answers.regions_in(self.dep, answers) if r) == expected,
                budget, self.poll_s, describe=f"answer as in steady state ({', '.join(sorted(expected))})",
                deployment=self.dep)
            self.run.mark("recovered", back.reached_at)
            self.run.figures.update(recovery_s=round(wait.reached_at - restore_t, 4),
                                    failback_s=round(back.reached_at - restore_t, 4))
            entry.update(recovery_s=self.run.figures["recovery_s"], failback_s=self.run.figures["failback_s"])

    def _replicated_to_restored(self, item_id: int) -> None:
        with reporting.phase("item reached the restored region") as entry:
            budget = tables.replication_budget(self.dep)
            wait = tables.wait_until_item_in_region(self.s.clients, self.dep, self.failed.name, {"id": item_id},
                                                    budget_s=budget, poll_s=self.poll_s)
            self.run.evidence["item_in_restored_region"] = wait.view.item
            entry.update(elapsed_s=wait.elapsed_s)

    def _evidence_of(self, exc: ScenarioError) -> None:
        if isinstance(exc, DetectionTimeout):
            self.run.evidence["health_at_timeout"] = [
                {"region": o.region, "ip": o.ip_address, "status": o.status} for o in exc.observations]
        elif isinstance(exc, dns_answers.DnsShiftTimeout):
            self.run.evidence["dns_answers"] = [{"t": p.t, "answers": p.answers, "regions": p.regions}
                                                for p in exc.history[-20:]]
        elif isinstance(exc, tables.ItemNotReplicated):
            self.run.evidence["item_by_region"] = {r: v.item for r, v in exc.last.items()}


def _excludes(dep: Any, answers: list[str], region: str) -> bool:
    """A non-empty answer that names no record of `region`."""
    return bool(answers) and region not in dns_answers.regions_in(dep, answers)


def _reasons(timeout: DetectionTimeout) -> str:
    """What the checkers said, most common first ("16 checkers: Failure: HTTP Status Code 403, Forbidden"),
    so a wrong path or a refused connection is named before anyone waits for a fault."""
    last = getattr(timeout, "last", None)
    observations = getattr(last, "observations", None) or []
    counts: dict[str, int] = {}
    for o in observations:
        if not o.ok:
            counts[o.status] = counts.get(o.status, 0) + 1
    if not counts or last is None:
        return str(timeout)
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:2]
    return f"{last.failing}/{last.total} checkers failing; " + "; ".join(f"{n}: {status}" for status, n in top)
