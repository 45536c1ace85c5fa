"""Background client load through the global domain; every request is recorded.

Why open-loop and deadline-scheduled: request k is due at t0 + k / rate whatever the
latency of earlier requests, so a slow or failing region shows up as errors and latency
in the record instead of silently lowering the rate (a closed loop that sleeps 1/rate
after each answer would hide exactly the outage a game day measures). Worker threads
take the next due slot from a shared counter; a slot more than `max_lag_s` late (every
worker was stuck) is skipped and counted, rather than fired in a burst.

Each request becomes one traffic event: t_start, t_end
(time.time()), op, ok, status, latency_s, region (the region the address it went to belongs to,
from the deployment's region map, else the address), item_id, error, address. Every acknowledged write (a 2xx to a put) is tracked by id.

`on_request(t_end, status, error)` hears of every request as it ends (status None: no answer), from
the worker's thread: how a fault's stop conditions learn what the game day's own clients see. It must
be cheap and thread-safe; an exception from it is dropped (an observer never stops the traffic).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gameday.errors import UsageError
from gameday.load.global_client import GlobalClient, GlobalRequestError, GlobalResponse
from gameday.observe.resolver import Resolver

PUT_PATH = "/item"
# The reference PutItem's answer when a multi-Region strongly consistent table rejects the write
# (ReplicatedWriteConflictException: another region is writing the item). Not acknowledged; counted.
CONFLICT_STATUS = 409
GET_PATH = "/item/{item_id}"
ID_SLOT_BITS = 24  # 16.7 M ids per run; a run's base is random, so runs never share ids


def new_id_base() -> int:
    """A random base below 2**53 (ids stay exact in any JSON reader), 2**24 ids apart from other runs."""
    return secrets.randbelow(2 ** (53 - ID_SLOT_BITS)) << ID_SLOT_BITS


RequestObserver = Callable[[float, int | None, str | None], None]   # (t_end, HTTP status or None, error)


class Client(Protocol):
    """What the traffic needs of a client: a GlobalClient, or one that wraps it (to observe acks)."""

    @property
    def resolver(self) -> Resolver: ...

    def get(self, path: str) -> GlobalResponse: ...

    def post(self, path: str, *, json: Any = None) -> GlobalResponse: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Progress:
    """Counters for progress lines; cheap to take while the traffic runs."""

    elapsed_s: float
    sent: int
    ok: int
    failed: int
    puts: int
    gets: int
    acked_writes: int
    skipped_slots: int
    in_flight: int
    by_region: dict[str, int] = field(default_factory=dict)
    conflicts: int = 0          # writes rejected as conflicts (CONFLICT_STATUS): failed, never acked

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


class Traffic:
    """Sends `rate` requests/s (a `write_ratio` share of them puts, the rest gets of acked ids).

    Use as a context manager or start()/stop(). Runs `duration_s` (None: until stop()).
    `record=False` keeps the counters and acked ids but not the events (to measure overhead).
    """

    def __init__(
        self,
        client: Client,
        *,
        rate: float = 50.0,
        write_ratio: float = 0.5,
        threads: int = 8,
        duration_s: float | None = None,
        id_base: int | None = None,
        record: bool = True,
        max_lag_s: float = 1.0,
        put_path: str = PUT_PATH,
        get_path: str = GET_PATH,
        on_request: RequestObserver | None = None,
    ) -> None:
        if not rate > 0:
            raise UsageError(f"rate: expected requests per second > 0, got {rate!r}")
        if not 0.0 <= write_ratio <= 1.0:
            raise UsageError(f"write_ratio: expected a share between 0 and 1, got {write_ratio!r}")
        if threads < 1:
            raise UsageError(f"threads: expected at least 1, got {threads!r}")
        if duration_s is not None and not duration_s > 0:
            raise UsageError(f"duration_s: expected seconds > 0 or None, got {duration_s!r}")
        self.client = client
        # Who a request that got no answer was sent to: the region of its address, when the client knows.
        self._region_of = getattr(client, "region_of_address", None) or _no_region
        self.rate = float(rate)
        self.write_ratio = float(write_ratio)
        self.threads = int(threads)
        self.duration_s = duration_s
        self.id_base = new_id_base() if id_base is None else int(id_base)
        self.record = record
        self.max_lag_s = float(max_lag_s)
        self.put_path = put_path
        self.get_path = get_path
        self.on_request = on_request
        self._events: list[dict[str, Any]] = []
        self._acked: dict[int, str | None] = {}  # item id -> region (or address) that acknowledged it
        self._acked_order: list[int] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._t0 = 0.0
        self._started_wall = 0.0
        self._next_slot = 0
        self._active = 0
        self._finished_at: float | None = None
        self._next_id = 0
        self._counts = {"sent": 0, "ok": 0, "failed": 0, "puts": 0, "gets": 0, "skipped": 0, "in_flight": 0,
                        "conflicts": 0}
        self._by_region: dict[str, int] = {}

    # -- construction from a deployment ------------------------------------------------
    @classmethod
    def for_url(cls, global_url: str, dns_resolver: str, *, time_scale: float = 1.0, dns_mode: str = "ttl",
                region: str | None = None, client_address: str | None = None,
                timeout: float | tuple[float, float] | None = None, ca_bundle: str | None = None,
                region_of_address: Callable[[str], str | None] | None = None, **kwargs: Any) -> Traffic:
        """Plain parameters: the URL, the resolver ("system" or host:port), the DNS mode (ttl | no-cache),
        the CA bundle HTTPS is verified against (None: the system store)."""
        resolver = Resolver(dns_resolver, time_scale=time_scale, cache=_cache_for(dns_mode),
                            client_addresses={region: client_address} if region and client_address else None)
        client_kwargs = {"timeout": timeout} if timeout is not None else {}
        client = GlobalClient(global_url, resolver, region=region if client_address else None,
                              pool_maxsize=max(8, int(kwargs.get("threads", 8))), verify=ca_bundle or True,
                              region_of_address=region_of_address, **client_kwargs)
        return cls(client, **kwargs)

    @classmethod
    def from_deployment(cls, dep: Any, *, dns_mode: str = "ttl", region: str | None = None,
                        timeout: float | tuple[float, float] | None = None, **kwargs: Any) -> Traffic:
        """From a gameday.deployment.Deployment; `region` makes this a client of that region (latency routing)."""
        resolver = Resolver.from_deployment(dep, cache=_cache_for(dns_mode))
        client_kwargs: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
        client = GlobalClient.from_deployment(dep, region=region, resolver=resolver,
                                              pool_maxsize=max(8, int(kwargs.get("threads", 8))), **client_kwargs)
        return cls(client, **kwargs)

    @property
    def dns_mode(self) -> str:
        return self.client.resolver.mode

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> Traffic:
        if self._workers:
            raise RuntimeError("traffic already started")
        self._started_wall = time.time()
        self._t0 = time.monotonic() + 0.002
        self._active = self.threads
        for index in range(self.threads):
            worker = threading.Thread(target=self._work, name=f"gameday-traffic-{index}", daemon=True)
            self._workers.append(worker)
            worker.start()
        return self

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop sending; requests in flight finish (bounded by the client's timeout) and are recorded."""
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the duration has run out (or stop()); True when every worker has finished."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for worker in self._workers:
            worker.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not self.running

    @property
    def running(self) -> bool:
        return any(w.is_alive() for w in self._workers)

    def __enter__(self) -> Traffic:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- results ---------------------------------------------------------------------
    def events(self) -> list[dict[str, Any]]:
        """A copy of the events recorded so far (in completion order)."""
        return list(self._events)

    def acked_ids(self) -> list[int]:
        """Ids of every acknowledged write, in acknowledgement order."""
        with self._lock:
            return list(self._acked_order)

    def acked(self) -> dict[int, str | None]:
        """Acknowledged write id -> the region (or address) that acknowledged it."""
        with self._lock:
            return dict(self._acked)

    def progress(self) -> Progress:
        with self._lock:
            c = dict(self._counts)
            by_region = dict(self._by_region)
            acked = len(self._acked_order)
            end = self._finished_at if self._finished_at is not None else time.monotonic()
        elapsed = max(0.0, end - self._t0) if self._t0 else 0.0
        return Progress(elapsed, c["sent"], c["ok"], c["failed"], c["puts"], c["gets"], acked, c["skipped"],
                        c["in_flight"], by_region, c["conflicts"])

    # -- the workers -----------------------------------------------------------------
    def _take_slot(self) -> tuple[int, float] | None:
        """The next due slot (index, monotonic due time), skipping slots more than max_lag_s late."""
        interval = 1.0 / self.rate
        with self._lock:
            slot = self._next_slot
            late_limit = int((time.monotonic() - self._t0 - self.max_lag_s) * self.rate)
            if slot < late_limit:
                self._counts["skipped"] += late_limit - slot
                slot = late_limit
            self._next_slot = slot + 1
        due = self._t0 + slot * interval
        if self.duration_s is not None and slot * interval >= self.duration_s:
            return None
        return slot, due

    def _is_write(self, slot: int) -> bool:
        """Exactly write_ratio of the slots are writes, evenly spread (no randomness to flake)."""
        return int((slot + 1) * self.write_ratio) > int(slot * self.write_ratio)

    def _work(self) -> None:
        try:
            while not self._stop.is_set():
                taken = self._take_slot()
                if taken is None:
                    return
                slot, due = taken
                delay = due - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
                self._send(self._is_write(slot), slot)
        finally:
            with self._lock:
                self._active -= 1
                if self._active == 0:
                    self._finished_at = time.monotonic()  # progress().elapsed_s stops here

    def _send(self, write: bool, slot: int) -> None:
        with self._lock:
            acked_count = len(self._acked_order)
            if write or not acked_count:  # nothing to read yet: write instead
                write = True
                item_id = self.id_base + self._next_id
                self._next_id += 1
            else:
                item_id = self._acked_order[(slot * 2654435761) % acked_count]  # spread reads over acked ids
            self._counts["in_flight"] += 1
        op = "put" if write else "get"
        status: int | None = None
        region: str | None = None
        address: str | None = None
        error: str | None = None
        t_start = time.time()
        p_start = time.perf_counter()
        try:
            if write:
                answer = self.client.post(self.put_path, json={"id": item_id, "name": f"gameday-{item_id}"})
            else:
                answer = self.client.get(self.get_path.format(item_id=item_id))
            latency = time.perf_counter() - p_start
            status, address, region = answer.status, answer.address, answer.served_by
            ok = answer.ok
            if not ok:
                error = f"HTTP {status}"
        except GlobalRequestError as exc:
            latency = time.perf_counter() - p_start
            region = self._region_of(exc.address) if exc.address else None
            ok, address, region, error = False, exc.address, region or exc.address, str(exc)
        except Exception as exc:  # noqa: BLE001 - a harness bug must show up as a recorded failure, not kill a worker
            latency = time.perf_counter() - p_start
            ok, error = False, f"{type(exc).__name__}: {exc}"[:200]
        t_end = t_start + latency
        if self.on_request is not None:
            try:
                self.on_request(t_end, status, error)
            except Exception:  # noqa: BLE001, S110 - an observer never stops the traffic
                pass
        if self.record:
            self._events.append(make_event(t_start, t_end, op, ok, status, latency, region, item_id, error, address))
        with self._lock:
            c = self._counts
            c["in_flight"] -= 1
            c["sent"] += 1
            c["puts" if write else "gets"] += 1
            c["ok" if ok else "failed"] += 1
            if write and status == CONFLICT_STATUS:
                c["conflicts"] += 1
            if region is not None:
                self._by_region[region] = self._by_region.get(region, 0) + 1
            if ok and write:
                self._acked[item_id] = region
                self._acked_order.append(item_id)


def _no_region(_address: str) -> str | None:
    return None


def make_event(t_start: float, t_end: float, op: str, ok: bool, status: int | None, latency_s: float,  # noqa: PLR0917
               region: str | None, item_id: int, error: str | None, address: str | None) -> dict[str, Any]:
    """One traffic event: the whole cost of recording is this dict + an append (positional: it is on the
    hot path of every request)."""
    return {"t_start": t_start, "t_end": t_end, "op": op, "ok": ok, "status": status, "latency_s": latency_s,
            "region": region, "item_id": item_id, "error": error, "address": address}


def _cache_for(dns_mode: str) -> bool:
    if dns_mode not in ("ttl", "no-cache"):
        raise UsageError(f"dns_mode: expected 'ttl' or 'no-cache', got {dns_mode!r}")
    return dns_mode == "ttl"
