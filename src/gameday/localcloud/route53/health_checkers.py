"""The Route 53 health-checker fleet: checkers that really probe, as AWS's do.

For every health check in moto's Route 53 backend (discovered every
`discovery_interval_s`, so checks that CloudFormation creates later are picked up),
len(regions) x settings.checkers_per_region checkers probe the endpoint, each on its own
staggered schedule (scaled RequestInterval, random phase, small jitter). One asyncio loop
in one thread runs every schedule and every probe: a hung endpoint costs an open socket,
not a thread, and idle keep-alive connections are reused.

Modelling choice (docs/local-cloud.md, "Health-check modelling choice"): what a checker reports
in GetHealthCheckStatus is its LATEST PROBE RESULT with the probe's time as CheckedTime, as AWS's
StatusReport is ("the status that one health checker reports and the time of the health check"),
not its verdict. The verdict flips only after FailureThreshold consecutive opposite results and
is kept inside the cloud; the check is healthy when MORE than 18% of verdicts are healthy, and
that aggregate is what DNS, TestDNSAnswer and the CloudWatch metrics follow. So a client that
applies the 18% rule to the observations reads a break about (threshold - 1) x interval early,
as it would on AWS. Inverted flips results; Disabled checks are not probed and are healthy.
"""

from __future__ import annotations

import asyncio
import http
import ipaddress
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gameday.localcloud.motoglue import access as moto_access
from gameday.localcloud.process.context import CHECKER_REGIONS, CloudContext

log = logging.getLogger(__name__)

HEALTHY_FRACTION_RULE = 0.18      # healthy when MORE than 18% of checkers say healthy
SEARCH_BYTES = 5120               # SearchString must be in the first 5,120 bytes
JITTER = 0.05                     # +-5% of the interval on every step: checkers drift, never in step
MAX_IDLE_PER_TARGET = 8
PROBED_TYPES = ("HTTP", "HTTPS", "HTTP_STR_MATCH", "HTTPS_STR_MATCH", "TCP")
USER_AGENT = "Amazon-Route53-Health-Check-Service (ref {ref}; report http://amzn.to/1vsZADi)"
# Published source ranges of the Route 53 health checkers (ip-ranges.json, ROUTE53_HEALTHCHECKS),
# so observations carry a plausible checker IPAddress per region.
CHECKER_NETWORKS = {
    "us-east-1": "107.23.255.0", "us-west-1": "54.241.32.64", "us-west-2": "54.244.52.192",
    "eu-west-1": "54.228.16.0", "ap-southeast-1": "54.255.254.192",
    "ap-southeast-2": "54.252.254.192", "ap-northeast-1": "54.250.253.192",
    "sa-east-1": "54.232.40.64",
}
REFUSED_TEXT = ("Failure: Connection refused. The endpoint or the internet connection is down, "
                "or requests are being blocked by your firewall.")
CONNECT_TIMEOUT_TEXT = ("Failure: Connection timed out. The endpoint or the internet connection is down, "
                        "or requests are being blocked by your firewall.")
RESPONSE_TIMEOUT_TEXT = "Failure: Response timed out. The endpoint took too long to respond."

HealthListener = Callable[[str, bool], None]
StateListener = Callable[[str, bool, float], None]
Resolver = Callable[[str, str], "str | None"]   # (host name, checker region) -> address


@dataclass(frozen=True)
class Result:
    ok: bool
    text: str
    at: datetime


@dataclass
class Checker:
    region: str
    index: int
    address: str
    due: float = 0.0
    handle: asyncio.TimerHandle | None = None
    # (verdict, latest result consistent with it): one tuple so readers in other threads
    # never see a verdict paired with a result of the other polarity.
    view: tuple[bool, Result | None] = (True, None)
    streak: int = 0                      # consecutive results opposite to the verdict
    latest: Result | None = None
    last_failure: Result | None = None


@dataclass
class CheckState:
    hc_id: str
    created: datetime
    checkers: list[Checker] = field(default_factory=list)
    healthy: bool = True
    fraction: float = 1.0
    disabled: bool = False
    scheduled: bool = False


@dataclass(frozen=True)
class ProbeSpec:
    """One probe's target, read from the health check's live configuration."""
    kind: str            # HTTP | HTTPS | TCP
    address: str
    port: int
    host_header: str
    path: str
    search: str | None
    sni: str             # "" = no SNI (EnableSNI false), as Route 53


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _now() -> datetime:
    return datetime.now(UTC)


def _flip(text: str) -> str:
    if text.startswith("Success"):
        return "Failure" + text[len("Success"):] + " (inverted)"
    if text.startswith("Failure"):
        return "Success" + text[len("Failure"):] + " (inverted)"
    return text


class _Pool:
    """Idle keep-alive connections per (kind, address, port); the loop thread only."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, str, int], list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {}

    def take(self, key: tuple[str, str, int]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        idle = self._idle.get(key)
        while idle:
            reader, writer = idle.pop()
            if not writer.is_closing() and not reader.at_eof():
                return reader, writer
            writer.close()
        return None

    def give(self, key: tuple[str, str, int], conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) < MAX_IDLE_PER_TARGET:
            idle.append(conn)
        else:
            conn[1].close()

    def close_all(self) -> None:
        for idle in self._idle.values():
            for _, writer in idle:
                writer.close()
        self._idle.clear()


class _StaleConnection(Exception):
    """A reused keep-alive connection was closed by the server before answering."""


async def _read_response(reader: asyncio.StreamReader, want_body: bool) -> tuple[int, str, bytes, bool]:
    """(status, reason, first bytes of the body, connection reusable)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise _StaleConnection() from exc
        raise
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    reusable = headers.get("connection", "").lower() != "close" and parts[0] == "HTTP/1.1"
    body = b""
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(chunks)
    elif status not in (204, 304) and status >= 200:
        body = await reader.read(SEARCH_BYTES) if want_body else b""
        reusable = False
    return status, reason, body[:SEARCH_BYTES], reusable


class HealthCheckerFleet:
    """Checkers for every Route 53 health check in moto; the aggregate status per check."""

    def __init__(self, ctx: CloudContext, *, discovery_interval_s: float = 0.1,
                 record_every_result: bool = False, seed: int | None = None) -> None:
        self._ctx = ctx
        self._discovery_interval = discovery_interval_s
        # Every result at 16 checkers x 10/s would flood the bounded truth log; by default a
        # checker_result is recorded when a checker's result changes (its first one included).
        self._record_every_result = record_every_result
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._states: dict[str, CheckState] = {}
        self._listeners: list[HealthListener] = []
        self._tick_listeners: list[Callable[[], None]] = []
        self._state_listeners: list[StateListener] = []
        self._resolver: Resolver | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pool = _Pool()
        self._ssl = ssl.create_default_context()
        self._ssl.check_hostname = False          # Route 53 does not validate certificates
        self._ssl.verify_mode = ssl.CERT_NONE
        self._probes = 0
        self._closing = False
        self._max_lateness = 0.0     # how late a checker fired, worst since the last reset
        self._max_probe = 0.0        # the slowest probe, since the last reset
        # Checkers probe every RequestInterval x pace: 1 is AWS's schedule; more is a fleet running
        # behind (a starved machine), which the harness must measure and allow for, never assume.
        self.pace = 1.0

    # ---- wiring -------------------------------------------------------------------------------
    def set_resolver(self, resolver: Resolver) -> None:
        """Resolution of names that ctx.names does not know (the hosted zones' records)."""
        self._resolver = resolver

    def add_listener(self, callback: HealthListener) -> None:
        """callback(health_check_id, healthy) on every aggregate change (in the fleet's thread)."""
        self._listeners.append(callback)

    def add_state_listener(self, callback: StateListener) -> None:
        """callback(health_check_id, healthy, healthy_fraction) whenever a verdict flips or the check
        is disabled or enabled (in the fleet's thread): what the CloudWatch metrics are built from."""
        self._state_listeners.append(callback)

    def add_tick_listener(self, callback: Callable[[], None]) -> None:
        """callback() after every discovery pass (records may have changed)."""
        self._tick_listeners.append(callback)

    def start(self) -> None:
        if self._thread is not None:
            return
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.call_soon(self._discovery_tick)
            try:
                loop.run_forever()
            finally:
                self._closing = True          # timers that fire during the clean-up start nothing
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                self._pool.close_all()
                loop.run_until_complete(asyncio.sleep(0))
                loop.close()

        self._thread = threading.Thread(target=run, name="route53-checkers", daemon=True)
        self._thread.start()
        ready.wait(5)

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        self._thread = None
        self._loop = None

    # ---- reading ------------------------------------------------------------------------------
    def known(self) -> list[str]:
        with self._lock:
            return list(self._states)

    def status(self, hc_id: str) -> bool:
        """Aggregate health (True for a check the fleet does not know: nothing says otherwise)."""
        state = self._state(hc_id)
        return True if state is None else state.healthy

    def healthy_fraction(self, hc_id: str) -> float:
        state = self._state(hc_id)
        return 1.0 if state is None else state.fraction

    def aggregates(self) -> dict[str, tuple[bool, float]]:
        """{health_check_id: (healthy, healthy_fraction)} of every known check, now."""
        with self._lock:
            states = list(self._states.values())
        return {s.hc_id: (s.healthy, s.fraction) for s in states}

    def observations(self, hc_id: str) -> list[dict[str, Any]]:
        """One observation per checker, AWS's GetHealthCheckStatus shape."""
        state = self._state(hc_id)
        if state is None:
            return []
        hc = moto_access.route53().health_checks.get(hc_id)
        disabled = hc is not None and _flag(hc.disabled)
        out = []
        for checker in state.checkers:
            result = checker.latest           # the latest probe, not the thresholded verdict
            if disabled:
                text, at = "Success: Health check is disabled; Route 53 considers it healthy", _now()
            elif result is None:   # not probed yet: healthy as of now, as a new check is on AWS
                text = "Success: New health check; healthy until FailureThreshold consecutive failures"
                at = _now()
            else:
                text, at = result.text, result.at
            out.append(self._observation(checker, text, at))
        return out

    def last_failures(self, hc_id: str) -> list[dict[str, Any]]:
        """Each checker's most recent failure (GetHealthCheckLastFailureReason)."""
        state = self._state(hc_id)
        if state is None:
            return []
        return [self._observation(c, c.last_failure.text, c.last_failure.at)
                for c in state.checkers if c.last_failure is not None]

    def probe_count(self) -> int:
        return self._probes

    def timing(self, reset: bool = False) -> dict[str, float]:
        """Worst scheduling lateness and probe duration (local s) since the last reset: how far a
        loaded machine pushed detection beyond threshold x interval (budgets in tests use it)."""
        figures = {"max_lateness_s": self._max_lateness, "max_probe_s": self._max_probe}
        if reset:
            self._max_lateness = self._max_probe = 0.0
        return figures

    @staticmethod
    def _observation(checker: Checker, text: str, at: datetime) -> dict[str, Any]:
        return {"Region": checker.region, "IPAddress": checker.address,
                "StatusReport": {"Status": text, "CheckedTime": at}}

    def _state(self, hc_id: str) -> CheckState | None:
        with self._lock:
            state = self._states.get(hc_id)
        if state is None and hc_id in moto_access.route53().health_checks:
            self.discover()
            with self._lock:
                state = self._states.get(hc_id)
        return state

    # ---- discovery ----------------------------------------------------------------------------
    def discover(self) -> None:
        """Add checkers for new health checks and drop deleted ones (any thread)."""
        checks = dict(moto_access.route53().health_checks)
        added: list[CheckState] = []
        removed: list[CheckState] = []
        with self._lock:
            for hc_id, hc in checks.items():
                if hc_id in self._states or str(hc.type_).upper() not in PROBED_TYPES:
                    continue
                state = self._new_state(hc_id, hc)
                self._states[hc_id] = state
                added.append(state)
            for hc_id in [i for i in self._states if i not in checks]:
                removed.append(self._states.pop(hc_id))
        loop = self._loop
        for state in added:
            self._ctx.truth.record("health_status", health_check_id=state.hc_id, healthy=True,
                                   healthy_fraction=1.0, initial=True)
            if loop is not None:
                loop.call_soon_threadsafe(self._schedule_first, state)
        for state in removed:
            if loop is not None:
                loop.call_soon_threadsafe(self._cancel, state)

    def _new_state(self, hc_id: str, hc: Any) -> CheckState:
        regions = [r for r in (hc.regions or []) if r in CHECKER_NETWORKS] or list(CHECKER_REGIONS)
        state = CheckState(hc_id=hc_id, created=_now())
        per_region = max(1, self._ctx.settings.checkers_per_region)
        for region in regions:
            base = ipaddress.IPv4Address(CHECKER_NETWORKS[region])
            for i in range(per_region):
                state.checkers.append(Checker(region=region, index=i, address=str(base + 1 + i)))
        return state

    def _discovery_tick(self) -> None:
        loop = self._loop
        if loop is None or self._closing:
            return
        try:
            self.discover()
            with self._lock:
                waiting = [s for s in self._states.values() if not s.scheduled]
            for state in waiting:       # discovered by a reader before the loop ran
                self._schedule_first(state)
            for callback in self._tick_listeners:
                callback()
        except Exception:  # a bad tick must not stop discovery for ever
            log.exception("route53 discovery tick failed")
        loop.call_later(self._discovery_interval, self._discovery_tick)

    def _schedule_first(self, state: CheckState) -> None:
        loop = self._loop
        hc = moto_access.route53().health_checks.get(state.hc_id)
        if loop is None or hc is None or state.scheduled:
            return
        state.scheduled = True
        interval = self._interval(hc)
        now = loop.time()
        for checker in state.checkers:
            checker.due = now + self._rng.uniform(0, interval)     # random phase
            checker.handle = loop.call_at(checker.due, self._fire, state, checker)

    @staticmethod
    def _cancel(state: CheckState) -> None:
        for checker in state.checkers:
            if checker.handle is not None:
                checker.handle.cancel()

    def _interval(self, hc: Any) -> float:
        return self._ctx.scale.seconds(_int(hc.request_interval, 30)) * self.pace

    # ---- probing ------------------------------------------------------------------------------
    def _fire(self, state: CheckState, checker: Checker) -> None:
        loop = self._loop
        with self._lock:
            current = self._states.get(state.hc_id) is state
        hc = moto_access.route53().health_checks.get(state.hc_id)
        if loop is None or not current or hc is None or self._closing:
            return
        interval = self._interval(hc)
        now = loop.time()
        self._max_lateness = max(self._max_lateness, now - checker.due)
        checker.due += interval * self._rng.uniform(1 - JITTER, 1 + JITTER)
        if checker.due < now:   # the loop fell behind (e.g. a paused process): re-phase, no burst
            checker.due = now + self._rng.uniform(0, interval)
        checker.handle = loop.call_at(checker.due, self._fire, state, checker)
        if _flag(hc.disabled) != state.disabled:
            state.disabled = _flag(hc.disabled)
            self._aggregate(state, hc)
        if state.disabled:
            return
        loop.create_task(self._probe_and_apply(state, checker, hc))

    async def _probe_and_apply(self, state: CheckState, checker: Checker, hc: Any) -> None:
        self._probes += 1
        started = time.monotonic()
        try:
            spec = self._spec(hc, checker.region)
            if isinstance(spec, str):
                ok, text = False, spec
            else:
                ok, text = await self._probe(spec, state.hc_id)
        except Exception as exc:  # every failure is a result, never a crash
            ok, text = False, f"Failure: {exc.__class__.__name__}: {exc}"
        self._max_probe = max(self._max_probe, time.monotonic() - started)
        self._apply(state, checker, hc, ok, text)

    def _spec(self, hc: Any, checker_region: str) -> ProbeSpec | str:
        kind = str(hc.type_).upper()
        proto = "TCP" if kind == "TCP" else ("HTTPS" if kind.startswith("HTTPS") else "HTTP")
        port = _int(hc.port, 443 if proto == "HTTPS" else 80)
        fqdn = (hc.fqdn or "").rstrip(".")
        address = hc.ip_address
        if not address:
            if not fqdn:
                return "Failure: The health check has neither IPAddress nor FullyQualifiedDomainName"
            address = self._ctx.names.lookup(fqdn)
            if address is None and self._resolver is not None:
                address = self._resolver(fqdn, checker_region)
            if address is None:
                return f"Failure: DNS resolution failed for {fqdn}"
        host = fqdn or address
        default_port = 443 if proto == "HTTPS" else 80
        host_header = host if port == default_port else f"{host}:{port}"
        search = hc.search_string if kind.endswith("STR_MATCH") else None
        path = hc.resource_path or "/"
        if not path.startswith("/"):
            path = "/" + path
        return ProbeSpec(proto, address, port, host_header, path, search,
                         fqdn if _flag(hc.enable_sni) else "")

    async def _probe(self, spec: ProbeSpec, hc_id: str) -> tuple[bool, str]:
        scale = self._ctx.scale
        connect_timeout, response_timeout = scale.timeout(4), scale.timeout(2)
        key = (f"{spec.kind}|{spec.sni}", spec.address, spec.port)  # a TLS connection is for one SNI
        if spec.kind == "TCP":
            try:
                async with asyncio.timeout(connect_timeout):
                    _, writer = await asyncio.open_connection(spec.address, spec.port)
            except TimeoutError:
                return False, CONNECT_TIMEOUT_TEXT
            except ConnectionRefusedError:
                return False, REFUSED_TEXT
            writer.close()
            return True, "Success: TCP connection established"
        request = (f"GET {spec.path} HTTP/1.1\r\nHost: {spec.host_header}\r\n"
                   f"User-Agent: {USER_AGENT.format(ref=hc_id)}\r\nAccept: */*\r\n\r\n").encode()
        for attempt in (0, 1):
            conn = self._pool.take(key) if attempt == 0 else None
            reused = conn is not None
            if conn is None:
                try:
                    async with asyncio.timeout(connect_timeout):
                        conn = await asyncio.open_connection(
                            spec.address, spec.port,
                            ssl=self._ssl if spec.kind == "HTTPS" else None,
                            server_hostname=spec.sni if spec.kind == "HTTPS" else None)
                except TimeoutError:
                    return False, CONNECT_TIMEOUT_TEXT
                except ConnectionRefusedError:
                    return False, REFUSED_TEXT
                except OSError as exc:
                    return False, f"Failure: {exc.strerror or exc}"
            reader, writer = conn
            try:
                async with asyncio.timeout(response_timeout):
                    writer.write(request)
                    status, reason, body, reusable = await _read_response(reader, spec.search is not None)
            except (_StaleConnection, ConnectionError) as exc:
                writer.close()
                if reused:
                    continue          # the server closed an idle connection: once more, fresh
                return False, f"Failure: Connection closed by the endpoint ({exc.__class__.__name__})"
            except TimeoutError:
                writer.close()
                return False, RESPONSE_TIMEOUT_TEXT
            except (ValueError, IndexError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                writer.close()
                return False, "Failure: The endpoint sent an invalid HTTP response"
            if reusable:
                self._pool.give(key, conn)
            else:
                writer.close()
            reason = reason or (http.HTTPStatus(status).phrase if status in http.HTTPStatus._value2member_map_ else "")
            described = f"HTTP Status Code {status}, {reason}"
            if not 200 <= status < 400:
                return False, f"Failure: {described}"
            if spec.search is not None and spec.search.encode() not in body:
                return False, f"Failure: {described}. The response body does not contain the search string"
            return True, f"Success: {described}"
        return False, "Failure: Connection closed by the endpoint"

    # ---- verdicts -----------------------------------------------------------------------------
    def _apply(self, state: CheckState, checker: Checker, hc: Any, ok: bool, text: str) -> None:
        if _flag(hc.inverted):
            ok, text = not ok, _flip(text)
        result = Result(ok, text, _now())
        previous = checker.latest
        verdict, _ = checker.view
        flipped = False
        if ok == verdict:
            checker.streak = 0
            checker.view = (verdict, result)
        else:
            checker.streak += 1
            if checker.streak >= max(1, _int(hc.failure_threshold, 3)):
                checker.streak = 0
                checker.view = (ok, result)
                flipped = True
        if self._record_every_result or previous is None or previous.ok != ok or flipped:
            self._ctx.truth.record("checker_result", health_check_id=state.hc_id, region=checker.region,
                                   checker=f"{checker.region}/{checker.index}", ok=ok, status=text,
                                   verdict=checker.view[0])
        if flipped:
            self._aggregate(state, hc)
        # Published last: a reader of GetHealthCheckStatus never sees a result whose consequence
        # (a flipped verdict, a changed status, its ground-truth record) is not in place yet.
        if not ok:
            checker.last_failure = result
        checker.latest = result

    def _aggregate(self, state: CheckState, hc: Any) -> None:
        healthy_count = sum(1 for c in state.checkers if c.view[0])
        fraction = healthy_count / len(state.checkers) if state.checkers else 1.0
        healthy = True if _flag(hc.disabled) else fraction > HEALTHY_FRACTION_RULE
        state.fraction = fraction
        changed = healthy != state.healthy
        state.healthy = healthy
        for listener in self._state_listeners:
            try:
                listener(state.hc_id, healthy, fraction)
            except Exception:  # metrics must never stop the verdicts
                log.exception("health state listener failed")
        if not changed:
            return
        self._ctx.truth.record("health_status", health_check_id=state.hc_id, healthy=healthy,
                               healthy_fraction=round(fraction, 4))
        for callback in self._listeners:
            try:
                callback(state.hc_id, healthy)
            except Exception:  # one bad listener must not stop the others
                log.exception("health listener failed")
