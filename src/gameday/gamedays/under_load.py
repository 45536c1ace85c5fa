"""Game days under load: traffic around a failover, and the figures that say what clients saw.

`FailoverUnderLoad` runs `Traffic` (writes and reads through the global domain, as a client
honouring the TTL) before, during and after a `RegionFailover`, keeps going after recovery
until a configured number of writes were acknowledged, then stops and proves where they are:

- RPO: every acknowledged id is read back from every region's table (BatchGetItem, strongly
  consistent, in chunks of 100), re-reading only what is still missing until replication has
  had its budget; whatever is still missing is lost, listed by id.
- replication lag: `LagSampler` takes every Nth acknowledged write and polls the other regions'
  tables until the item shows up: (source, target, written_at = ack, seen_at = the read that
  found it). An upper bound by at most one poll interval plus a read's round trip.
- the rest (client outage, errors, latency before/during/after, failback) from the recorded
  events and the failover's marks (`metrics.summarize`), checked against the SLOs of the
  deployment file and the command line / environment.

Every request of the traffic is also reported to `own_traffic(deployment)`: while the fault is in
place, the guardrails' error-rate stop condition judges what these clients see (5xx, 429 and no
answer count as errors; other 4xx are the request's own fault).

Why the sampler wraps the client instead of reading the traffic's records: it learns of each
acknowledgement as it happens (no copying of a growing event list), without changing Traffic.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from tenacity import wait_exponential

from gameday import timing
from gameday.errors import Category, GamedayError, ScenarioFailed, UsageError
from gameday.faults.flip_health import FlipHealth
from gameday.faults.watch import own_traffic
from gameday.gamedays.failover import FaultFactory, RegionFailover
from gameday.gamedays.session import GamedaySession
from gameday.gamedays.steps import Throttled, categorised_failures, fail, wait_for
from gameday.load.global_client import GlobalClient, GlobalResponse
from gameday.load.traffic import CONFLICT_STATUS, PUT_PATH, Traffic
from gameday.measure import metrics
from gameday.measure.slo import effective_slos, parse_overrides
from gameday.observe import dns_answers, tables
from gameday.observe.resolver import Resolver
from gameday.records import RunRecord
from gameday.report import allure as reporting

KEY = "id"                      # the table's partition key (the reference handlers' item id)
BATCH_GET_MAX = 100             # DynamoDB BatchGetItem: at most 100 keys per request
BATCH_GET_ROUNDS = 8            # UnprocessedKeys (throttling on AWS) asked again, backing off, this often
LAG_POLL_CAP_S = 0.25           # replication is "typically within a second": sample it finer than health
SLO_ENV = "GAMEDAY_SLO"         # "client_outage_s=120,failback_s=200" (AWS-equivalent seconds)


# -- settings ------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoadSettings:
    """Traffic of a game day under load. Sources: command line > environment > default."""

    rate: float = 60.0              # requests/s (the local cloud, serving HTTPS, takes well under 120 on
                                    # 2 cores; at 120 its health checkers fall seconds behind: kept below
                                    # its limit so overload does not delay or flap its health checks)
    write_ratio: float = 0.8        # writes are what RPO is about; reads check what was written
    threads: int = 16
    acked_writes: int = 1000        # keep going after recovery until this many writes were acknowledged
    lag_samples_per_s: float = 10.0  # replication-lag samples per second of writes
    dns_mode: str = "ttl"           # a client honouring the TTL, as real clients do

    ENV = {"rate": "GAMEDAY_LOAD_RATE", "write_ratio": "GAMEDAY_LOAD_WRITE_RATIO",
           "acked_writes": "GAMEDAY_LOAD_ACKED_WRITES", "dns_mode": "GAMEDAY_LOAD_DNS_MODE"}

    @classmethod
    def from_sources(cls, cli: Mapping[str, Any] | None = None,
                     env: Mapping[str, str] | None = None) -> LoadSettings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, var in cls.ENV.items():
            raw, where = (cli or {}).get(name), f"--load-{name.replace('_', '-')}"
            if raw is None and env.get(var):
                raw, where = env[var], var
            if raw is None:
                continue
            values[name] = _parse_setting(name, raw, where)
        return cls(**values)

    @property
    def write_rate(self) -> float:
        return self.rate * self.write_ratio

    def lag_every(self) -> int:
        """Sample every Nth acknowledged write."""
        return max(1, round(self.write_rate / self.lag_samples_per_s)) if self.lag_samples_per_s > 0 else 0


def _parse_setting(name: str, raw: Any, where: str) -> Any:
    try:
        if name == "dns_mode":
            if raw not in ("ttl", "no-cache"):
                raise ValueError
            return raw
        value = int(raw) if name == "acked_writes" else float(raw)
    except (TypeError, ValueError):
        raise UsageError(f"{where}: expected {'ttl or no-cache' if name == 'dns_mode' else 'a number'}, "
                         f"got {raw!r}") from None
    if name == "write_ratio" and not 0 < value <= 1:
        raise UsageError(f"{where}: expected a share in (0, 1], got {raw!r}")
    if name in ("rate", "acked_writes") and not value > 0:
        raise UsageError(f"{where}: expected a number > 0, got {raw!r}")
    return value


#: The command line's SLO parser and the file+command line merge (kept here for callers of the procedure).
slo_overrides = parse_overrides


class UnprocessedKeysLeft(GamedayError):
    """BatchGetItem kept answering UnprocessedKeys (throttling) after every round."""


def _batch_get(ddb: Any, table: str, request: dict[str, Any], on_items: Callable[[list[dict[str, Any]]], None]) -> None:
    """One BatchGetItem request, asking again for its UnprocessedKeys (backing off) a bounded number of times."""
    pending = [request]

    def one_round() -> bool:
        answer = ddb.batch_get_item(RequestItems=pending[0])
        on_items(answer.get("Responses", {}).get(table, []))
        pending[0] = answer.get("UnprocessedKeys") or {}
        return not pending[0]

    rounds = timing.measured_poll(one_round, poll_s=2.0, budget_s=None, max_attempts=BATCH_GET_ROUNDS,
                                  wait=wait_exponential(multiplier=0.05, max=2.0))
    if not rounds.reached:
        raise UnprocessedKeysLeft(f"{table}: keys still unprocessed after {rounds.attempts} BatchGetItem rounds")


# -- table reads for RPO ---------------------------------------------------------------------
def read_present(clients: Any, deployment: Any, region: str, ids: Iterable[int]) -> set[int]:
    """The subset of `ids` present in `region`'s table (strongly consistent BatchGetItem in chunks)."""
    ddb = clients.dynamodb(region)
    table = deployment.table.name
    wanted = sorted(set(int(i) for i in ids))
    found: set[int] = set()
    for start in range(0, len(wanted), BATCH_GET_MAX):
        keys = [{KEY: {"N": str(i)}} for i in wanted[start:start + BATCH_GET_MAX]]
        request = {table: {"Keys": keys, "ConsistentRead": True, "ProjectionExpression": "#k",
                           "ExpressionAttributeNames": {"#k": KEY}}}
        _batch_get(ddb, table, request, lambda items: found.update(int(item[KEY]["N"]) for item in items))
    return found


def read_items(clients: Any, deployment: Any, region: str, ids: Iterable[int], *,
               consistent: bool = True) -> dict[int, dict[str, Any]]:
    """{id: item (plain values)} for the ids present in `region` (strongly consistent unless asked
    otherwise, chunked)."""
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    ddb = clients.dynamodb(region)
    table = deployment.table.name
    wanted = sorted(set(int(i) for i in ids))
    out: dict[int, dict[str, Any]] = {}

    def keep(raws: list[dict[str, Any]]) -> None:
        for raw in raws:
            item = tables.plain({k: deserializer.deserialize(v) for k, v in raw.items()})
            out[int(item[KEY])] = item

    for start in range(0, len(wanted), BATCH_GET_MAX):
        request = {table: {"Keys": [{KEY: {"N": str(i)}} for i in wanted[start:start + BATCH_GET_MAX]],
                           "ConsistentRead": consistent}}
        _batch_get(ddb, table, request, keep)
    return out


@dataclass
class ReplicationWait:
    present: dict[str, set[int]]        # region -> acked ids found there
    missing: dict[str, set[int]]        # region -> acked ids still missing at the end
    elapsed_s: float
    complete: bool
    polls: int


def wait_until_replicated(session: GamedaySession, acked_ids: Iterable[int], *, budget_s: float,
                          poll_s: float) -> ReplicationWait:
    """Read every acked id from every region; re-read only the missing ones until none is missing
    or the budget is spent. What is missing then is lost (RPO)."""
    dep = session.deployment
    acked = set(int(i) for i in acked_ids)
    missing = {r.name: set(acked) for r in dep.regions}
    started = time.monotonic()
    polls = [0]
    say = Throttled(session)

    def poll() -> bool:
        polls[0] += 1
        for region, ids in missing.items():
            if ids:
                ids.difference_update(read_present(session.clients, dep, region, ids))
        left = {r: len(ids) for r, ids in missing.items() if ids}
        if left:
            say.say(f"replication: waiting for {', '.join(f'{n} ids in {r}' for r, n in left.items())} "
                    f"({time.monotonic() - started:.2f} s of {budget_s:.2f} s budget)")
        return not left

    complete, _ = wait_for(poll, budget_s=budget_s, poll_s=poll_s)
    present = {region: acked - ids for region, ids in missing.items()}
    return ReplicationWait(present, missing, time.monotonic() - started, complete, polls[0])


# -- replication lag ---------------------------------------------------------------------------
class LagSampler:
    """For every Nth acknowledged write, poll the other regions' tables until the item is there.

    One thread polls in rounds: each round reads every pending sample's id from each region it has
    not shown up in yet (one BatchGetItem per region), so a region that never receives an item
    (replication dropped) costs one read per round, not a blocked worker per sample.
    """

    def __init__(self, session: GamedaySession, *, every: int, poll_s: float | None = None,
                 budget_s: float | None = None) -> None:
        dep = session.deployment
        self.s = session
        self.every = every
        self.regions = dep.region_names
        self.poll_s = poll_s if poll_s is not None else min(timing.poll_interval(dep), LAG_POLL_CAP_S)
        self.budget_s = budget_s if budget_s is not None else tables.replication_budget(dep)
        self.samples: list[tuple[str, str, float, float]] = []
        self.unseen: list[dict[str, Any]] = []     # samples whose item never showed up in a region
        self.read_errors = 0
        self._queue: queue.Queue[tuple[int, str, float]] = queue.Queue()
        self._pending: dict[int, tuple[str, float, set[str]]] = {}   # id -> (source, acked_at, targets left)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._count = 0
        self._thread = threading.Thread(target=self._run, name="gameday-lag", daemon=True)

    def start(self) -> LagSampler:
        self._thread.start()
        return self

    def offer(self, item_id: int, source: str | None, acked_at: float) -> None:
        if not self.every or source not in self.regions or self._stop.is_set():
            return
        with self._lock:
            self._count += 1
            take = self._count % self.every == 0
        if take:
            self._queue.put((item_id, source, acked_at))

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop polling; samples still pending are neither seen nor unseen (the run ended first)."""
        self._stop.set()
        self._thread.join(timeout_s)

    @property
    def pending(self) -> int:
        return len(self._pending) + self._queue.qsize()

    def _run(self) -> None:
        timing.measured_poll(self._round, until=lambda _: False, poll_s=self.poll_s, budget_s=None,
                             stop_event=self._stop)

    def _round(self) -> bool:
        while True:
            try:
                item_id, source, acked_at = self._queue.get_nowait()
            except queue.Empty:
                break
            self._pending[item_id] = (source, acked_at, {r for r in self.regions if r != source})
        for target in self.regions:
            ids = [i for i, (_, _, left) in self._pending.items() if target in left]
            if not ids:
                continue
            try:
                found = read_present(self.s.clients, self.s.deployment, target, ids)
            except (ClientError, BotoCoreError, UnprocessedKeysLeft):
                self.read_errors += 1
                continue
            seen_at = time.time()
            for item_id in found:
                source, acked_at, left = self._pending[item_id]
                self.samples.append((source, target, acked_at, seen_at))
                left.discard(target)
        now = time.time()
        for item_id, (source, acked_at, left) in list(self._pending.items()):
            if not left:
                del self._pending[item_id]
            elif now - acked_at > self.budget_s:
                self.unseen += [{"id": item_id, "source": source, "target": t, "acked_at": acked_at} for t in left]
                del self._pending[item_id]
        return True


class DnsWatcher:
    """What DNS answers (uncached: the routing decision) during the whole run, change by change.

    Why: after recovery a client must be served where routing sends it; if Route 53 itself
    changes its mind again (a health check flapping under load), requests to another region
    are routing's decision, not the client's error. The changes explain them (and are a finding).
    """

    def __init__(self, session: GamedaySession, poll_s: float) -> None:
        self.dep = session.deployment
        self.fetch = dns_answers.resolver_fetcher(session.resolver, self.dep.domain, cached=False)
        self.poll_s = poll_s
        self.changes: list[dict[str, Any]] = []     # {"t", "regions"} whenever the answer changes
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gameday-dns-watch", daemon=True)

    def start(self) -> DnsWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10.0)

    def _look(self) -> bool:
        try:
            regions = sorted({r for r in dns_answers.regions_in(self.dep, self.fetch()) if r})
        except Exception:  # noqa: BLE001 - a failed look is counted, the watch goes on
            self.errors += 1
            return True
        if not self.changes or self.changes[-1]["regions"] != regions:
            self.changes.append({"t": time.time(), "regions": regions})
        return True

    def _run(self) -> None:
        timing.measured_poll(self._look, until=lambda _: False, poll_s=self.poll_s, budget_s=None,
                             stop_event=self._stop)

    def answered_elsewhere(self, home: set[str], since: float, until: float) -> list[dict[str, Any]]:
        """Periods that began in (since, until] when DNS answered a region outside `home`."""
        periods = []
        for i, change in enumerate(self.changes):
            end = self.changes[i + 1]["t"] if i + 1 < len(self.changes) else until
            if set(change["regions"]) - home and since < change["t"] <= until:
                periods.append({"start": change["t"], "end": end, "regions": change["regions"]})
        return periods


class ObservedClient:
    """A GlobalClient that reports each acknowledged write (id, region, time) as it happens."""

    def __init__(self, client: GlobalClient, on_ack: Callable[[int, str | None, float], None]) -> None:
        self.client = client
        self.on_ack = on_ack

    @property
    def resolver(self) -> Resolver:
        return self.client.resolver

    def region_of_address(self, address: str) -> str | None:
        return self.client.region_of_address(address)

    def get(self, path: str, **kwargs: Any) -> GlobalResponse:
        return self.client.get(path, **kwargs)

    def post(self, path: str, *, json: Any = None, **kwargs: Any) -> GlobalResponse:
        answer = self.client.post(path, json=json, **kwargs)
        if answer.ok and path == PUT_PATH and isinstance(json, dict) and KEY in json:
            self.on_ack(json[KEY], answer.region, time.time())
        return answer

    def close(self) -> None:
        self.client.close()


# -- figures ---------------------------------------------------------------------------------
def home_regions(events: list[dict[str, Any]], before_t: float | None, names: Iterable[str]) -> set[str]:
    """Regions that served successful requests before `before_t` (where routing sends this client)."""
    known = set(names)
    return {e["region"] for e in events if e["ok"] and e["region"] in known
            and (before_t is None or e["t_start"] < before_t)}


def load_figures(run: RunRecord, events: list[dict[str, Any]], *, acked: Mapping[int, str | None],
                 present: Mapping[str, set[int]] | None, sampler: LagSampler | None, home: set[str],
                 time_scale: float) -> dict[str, Any]:
    """Every figure of a game day under load (metrics.summarize plus counts per region and rates)."""
    figures = metrics.summarize(events, run.marks, acked_ids=list(acked), present=present,
                                lag_samples=sampler.samples if sampler else None,
                                restored_region=home or None, time_scale=time_scale)
    figures.pop("detection_s", None)   # RegionFailover's own (same definition, from the same marks)
    figures.pop("dns_shift_s", None)
    by_region = figures.pop("rpo_missing_by_region", {}) or {}
    figures["rpo_missing_by_region"] = {region: len(ids) for region, ids in by_region.items()}
    acked_by: dict[str, int] = {}
    for region in acked.values():
        acked_by[str(region)] = acked_by.get(str(region), 0) + 1
    figures["acked_by_region"] = acked_by
    # Writes an MRSC table rejected because another region was writing the item: not acknowledged,
    # so never counted lost, but counted.
    figures["write_conflicts"] = sum(1 for e in events if e["op"] == "put" and e["status"] == CONFLICT_STATUS)
    if events:
        span = max(e["t_end"] for e in events) - min(e["t_start"] for e in events)
        figures["traffic_s"] = round(span, 3)
        figures["requests_per_s"] = round(len(events) / span, 1) if span > 0 else None
        figures["acked_writes_per_s"] = round(len(acked) / span, 1) if span > 0 else None
    if sampler is not None:
        figures["replication_lag_samples"] = len(sampler.samples)
        figures["replication_lag_unseen"] = len(sampler.unseen)
    figures["home_regions"] = sorted(home)
    return figures


def slo_failure(run: RunRecord, figures: Mapping[str, Any], slos: Mapping[str, Any],
                time_scale: float, *, record_ttl_s: float | None = None) -> ScenarioFailed | None:
    violations = metrics.check_slos(figures, slos, time_scale=time_scale)
    messages = [v.message + (outage_parts(figures, time_scale, record_ttl_s) if v.figure == "client_outage_s" else "")
                for v in violations]
    run.evidence["slo"] = {"targets": {k: v for k, v in slos.items() if v is not None}, "violations": messages}
    if violations:
        return fail(run, Category.SLO_VIOLATION, "; ".join(messages))
    return None


def outage_parts(figures: Mapping[str, Any], time_scale: float, record_ttl_s: float | None) -> str:
    """" (detection A + routing change B + client cache C AWS s; ...)": which part of a client outage
    to act on, and the records' TTL when the clients' caches are the largest part."""
    parts = [(label, figures.get(name)) for label, name in (("detection", "outage_detection_s"),
                                                            ("routing change", "outage_routing_s"),
                                                            ("client cache", "outage_client_cache_s"))]
    aws = [(label, float(value) / time_scale) for label, value in parts if value is not None]
    if len(aws) < len(parts):
        return ""
    text = " + ".join(f"{label} {value:.0f}" for label, value in aws)
    largest = max(aws, key=lambda part: part[1])[0]
    if largest == "client cache" and record_ttl_s is not None:
        text += (f" AWS s: clients keep the records for their TTL of {record_ttl_s:g} s after DNS moves; "
                 f"a shorter TTL shortens the outage")
    else:
        text += f" AWS s; the largest part is {largest}"
    return f" ({text})"


# -- the procedure ---------------------------------------------------------------------------------
class FailoverUnderLoad:
    """RegionFailover with traffic through the global domain before, during and after it."""

    def __init__(self, session: GamedaySession, failed_region: str, settings: LoadSettings | None = None, *,
                 slos: Mapping[str, Any] | None = None, scenario: str = "failover_under_load",
                 fault: FaultFactory = FlipHealth) -> None:
        self.s = session
        self.dep = session.deployment
        self.settings = settings or LoadSettings()
        self.slos = dict(slos) if slos is not None else effective_slos(self.dep)
        self.failover = RegionFailover(session, failed_region, scenario=scenario,
                                       between_detection_and_write=self._at_dns_shift, fault=fault)
        self.run = self.failover.run
        self.poll_s = session.poll_s
        self.say = Throttled(session)
        self.traffic: Traffic | None = None
        self.sampler: LagSampler | None = None
        self.watcher: DnsWatcher | None = None

    @property
    def _traffic(self) -> Traffic:
        if self.traffic is None:
            raise RuntimeError("traffic not started")
        return self.traffic

    def execute(self) -> RunRecord:
        st = self.settings
        # Under latency routing the clients that live through the failure are the failed region's own
        # (its client network, where the deployment names one); elsewhere they would never notice it.
        near = self.run.failed_region if self.dep.routes_by_client else None
        client = GlobalClient.from_deployment(self.dep, region=near, dns_mode=st.dns_mode,
                                              pool_maxsize=max(8, st.threads))
        self.sampler = LagSampler(self.s, every=st.lag_every())
        self.traffic = Traffic(ObservedClient(client, self.sampler.offer), rate=st.rate, write_ratio=st.write_ratio,
                               threads=st.threads, on_request=own_traffic(self.dep).report)
        self.run.evidence["load"] = {"rate": st.rate, "write_ratio": st.write_ratio, "threads": st.threads,
                                     "acked_writes_target": st.acked_writes, "dns_mode": st.dns_mode,
                                     "lag_sample_every": st.lag_every()}
        outcome: BaseException | None = None
        self.watcher = DnsWatcher(self.s, max(self.poll_s, 0.05)).start()
        self.sampler.start()
        self.traffic.start()
        try:
            with categorised_failures(self.run):
                self._warm_up()
                self.failover.execute()
                self._keep_going()
        except BaseException as exc:  # noqa: BLE001 - figures first, then the same exception goes on
            outcome = exc
        finally:
            self.traffic.stop()
            self.sampler.stop()
            self.watcher.stop()
            client.close()
            self.run.traffic = self.traffic.events()
        if isinstance(outcome, (KeyboardInterrupt, SystemExit)):
            raise outcome
        try:
            with categorised_failures(self.run):
                self._figures()
        except BaseException as exc:
            if outcome is None:
                raise
            self.run.evidence["figures_error"] = f"{type(exc).__name__}: {exc}"
        if outcome is not None:
            raise outcome
        with categorised_failures(self.run):
            self._verdicts()
        return self.run

    # -- steps -----------------------------------------------------------------------
    def _progress(self) -> str:
        p = self._traffic.progress()
        regions = ", ".join(f"{r}: {n}" for r, n in sorted(p.by_region.items()))
        conflicts = f", {p.conflicts} of them write conflicts" if p.conflicts else ""
        return (f"traffic: {p.acked_writes}/{self.settings.acked_writes} acked writes, {p.rate:.0f} req/s, "
                f"{p.failed} failed{conflicts} ({regions})")

    def _warm_up(self) -> None:
        """Traffic before the fault: the 'before' latency and the region routing serves."""
        with reporting.phase("traffic warm-up") as entry:
            warm_s = max(1.0, 10 * self.dep.time_scale)
            warm_acked = max(20, min(200, self.settings.acked_writes // 10))
            # the writes at the configured rate, four times over, plus the time clients take to follow DNS
            budget = warm_s + 4 * warm_acked / self.settings.write_rate + self.s.follow_budget()

            def warm() -> bool:
                p = self._traffic.progress()
                self.say.say(self._progress())
                return p.elapsed_s >= warm_s and p.acked_writes >= warm_acked

            reached, _ = wait_for(warm, budget_s=budget, poll_s=self.poll_s)
            entry.update(acked=self._traffic.progress().acked_writes)
            if not reached:
                raise fail(self.run, Category.STEADY_STATE, f"traffic warm-up: fewer than {warm_acked} writes acknowledged "
                                                      f"in {budget:.0f} s ({self._progress()})")

    def _at_dns_shift(self, run: RunRecord) -> None:
        self.s.progress.say(f"DNS shifted away from {run.failed_region}; {self._progress()}")

    def _keep_going(self) -> None:
        """After recovery: until the acked-write target, and long enough for clients' caches to follow."""
        with reporting.phase("traffic after recovery") as entry:
            st = self.settings
            recovered = self.run.marks.get("recovered") or time.time()
            follow_s = self.s.follow_budget()
            left = max(0, st.acked_writes - self._traffic.progress().acked_writes)
            budget = 2 * follow_s + 4 * left / st.write_rate

            def done() -> bool:
                self.say.say(self._progress())
                return (self._traffic.progress().acked_writes >= st.acked_writes
                        and time.time() >= recovered + follow_s)

            reached, _ = wait_for(done, budget_s=budget, poll_s=self.poll_s)
            entry.update(acked=self._traffic.progress().acked_writes)
            if not reached:
                raise fail(self.run, Category.HARNESS_ERROR, f"only {self._traffic.progress().acked_writes} of "
                                                      f"{st.acked_writes} writes acknowledged within {budget:.0f} s "
                                                      f"({self._progress()}): lower the target or the rate")

    def _figures(self) -> None:
        with reporting.phase("RPO: every acknowledged write in every region") as entry:
            acked = self._traffic.acked()
            events = self.run.traffic
            budget = tables.replication_budget(self.dep)
            wait = wait_until_replicated(self.s, acked, budget_s=budget, poll_s=max(self.poll_s, 0.05))
            fault_t = self.run.marks.get("fault")
            home = home_regions(events, fault_t, self.dep.region_names)
            figures = load_figures(self.run, events, acked=acked, present=wait.present, sampler=self.sampler,
                                   home=home, time_scale=self.dep.time_scale)
            if "failback_s" in self.run.figures:  # RegionFailover's: restore -> DNS answers as before
                self.run.figures["dns_failback_s"] = self.run.figures.pop("failback_s")
            figures["replication_wait_s"] = round(wait.elapsed_s, 4)
            self.run.figures.update(figures)
            self._outage_split(events)
            self.run.evidence["rpo"] = {
                "acked_writes": len(acked), "complete": wait.complete, "polls": wait.polls,
                "missing_in": {r: sorted(ids)[:50] for r, ids in wait.missing.items() if ids}}
            if self.sampler is not None and self.sampler.unseen:
                self.run.evidence["replication_unseen_samples"] = self.sampler.unseen[:20]
            self._served_after_recovery(home)
            entry.update(acked_writes=len(acked), rpo_lost_writes=figures["rpo_lost_writes"],
                         failback_s=figures["failback_s"])
            self.s.progress.say(f"{len(acked)} acked writes, {figures['rpo_lost_writes']} lost; replication lag "
                                f"p50 {figures['replication_lag_p50_s']} s, p99 {figures['replication_lag_p99_s']} s")

    def _outage_split(self, events: list[dict[str, Any]]) -> None:
        """The client outage's parts, and whether its last part agrees with the records' TTL: a client
        whose cache holds the old answer at most a TTL past the DNS shift sends its last failing
        request within TTL (+ one poll, the shift mark's lateness) of that mark."""
        f = self.run.figures
        shifted, end = self.run.marks.get("dns_shift"), f.get("outage_end")
        if f.get("outage_client_cache_s") is None or shifted is None or end is None:
            return
        ttl_s = self.dep.record_ttl_s * self.dep.time_scale
        failed = [e for e in events if not e["ok"] and e["t_start"] <= end]
        last = max(failed, key=lambda e: e["t_start"]) if failed else None
        after_shift = None if last is None else round(last["t_start"] - shifted, 4)
        within = after_shift <= ttl_s + self.poll_s if after_shift is not None else True
        self.run.evidence["client_outage_split"] = {
            "detection_s": f["outage_detection_s"], "routing_change_s": f["outage_routing_s"],
            "client_cache_s": f["outage_client_cache_s"], "record_ttl_s": self.dep.record_ttl_s,
            "last_failed_request": None if last is None else {k: last.get(k) for k in ("t_start", "t_end", "status")},
            "last_failed_request_after_dns_shift_s": after_shift, "bound_s": round(ttl_s + self.poll_s, 4),
            "within_ttl": within}
        if after_shift is not None and not within:
            self.run.findings.append(
                f"clients' requests still failed {after_shift:.2f} s after DNS stopped answering "
                f"{self.run.failed_region} ({after_shift / self.dep.time_scale:.0f} s AWS), longer than the records' TTL "
                f"of {self.dep.record_ttl_s} s: a client keeps DNS answers beyond their TTL")

    def _served_after_recovery(self, home: set[str]) -> None:
        """Who served the successful requests once clients' caches had followed the recovery."""
        recovered = self.run.marks.get("recovered")
        if recovered is None:
            return
        cache_s = self.dep.record_ttl_s * self.dep.time_scale
        since = recovered + cache_s + self.poll_s
        events = self.run.traffic
        until = max((e["t_end"] for e in events), default=since)
        # DNS answering elsewhere again after recovery (Route 53 changed its mind): clients follow
        # for up to one cached TTL after each such period.
        periods = self.watcher.answered_elsewhere(home, recovered, until) if self.watcher else []
        windows = [(p["start"], p["end"] + cache_s + self.poll_s) for p in periods]
        served: dict[str, int] = {}
        unexplained: dict[str, int] = {}
        for e in events:
            if e["ok"] and e["t_start"] >= since:
                region = str(e["region"])
                served[region] = served.get(region, 0) + 1
                if region not in home and not any(a <= e["t_start"] <= b for a, b in windows):
                    unexplained[region] = unexplained.get(region, 0) + 1
        self.run.evidence["served_after_recovery"] = {"since": since, "by_region": served, "home": sorted(home),
                                                      "unexplained": unexplained,
                                                      "dns_elsewhere_after_recovery": periods}
        self.run.evidence["dns_changes"] = (self.watcher.changes[:50] if self.watcher else [])
        if unexplained:
            self.run.findings.append(
                f"after recovery {sum(unexplained.values())} requests were served by {sorted(unexplained)} while "
                f"the DNS watch (every {self.watcher.poll_s if self.watcher else '?'} s) saw no answer naming it: "
                f"a shorter change of Route 53's answer, which clients cached for up to a TTL")
        if periods:
            total = sum(p["end"] - p["start"] for p in periods)
            self.run.findings.append(
                f"after recovery DNS answered {sorted({r for p in periods for r in p['regions']})} again "
                f"{len(periods)} time(s), {total:.2f} s in all ({total / self.dep.time_scale:.0f} s AWS): Route 53 "
                f"health changed again under load; clients followed as routing said")

    def _verdicts(self) -> None:
        f = self.run.figures
        lost = f.get("rpo_lost_writes")
        if lost:
            ids = f.get("rpo_missing_ids") or []
            where = ", ".join(f"{n} missing in {r}" for r, n in (f.get("rpo_missing_by_region") or {}).items())
            raise fail(self.run, Category.LOST_WRITES, f"{lost} of {f['acked_writes']} acknowledged writes lost ({where}); "
                                                f"ids: {', '.join(map(str, ids[:20]))}{' ...' if len(ids) > 20 else ''}")
        home = set(f.get("home_regions") or [])
        # Clients only go where DNS sends them; what must hold is that traffic came back to where
        # routing sends it and stayed there (requests elsewhere after recovery are findings).
        after = self.run.evidence.get("served_after_recovery") or {}
        served = after.get("by_region", {})
        if f.get("failback_s") is None or not any(served.get(r) for r in home):
            raise fail(self.run, Category.WRONG_REGION, f"after recovery traffic did not return to {sorted(home)} as the "
                                                 f"routing says: served by {served or 'nobody'}")
        failed = slo_failure(self.run, f, self.slos, self.dep.time_scale, record_ttl_s=self.dep.record_ttl_s)
        if failed is not None:
            raise failed
