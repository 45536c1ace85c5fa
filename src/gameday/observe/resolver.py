"""A stub DNS resolver that behaves like a real client's: it honours the TTL.

Why not the system's getaddrinfo: the game day must see exactly what a client sees
(which address, for how long it is cached), query the deployment's own resolver (the
local cloud's DNS server on loopback, or the system's on AWS), and optionally send an
EDNS0 client subnet so latency routing answers as it would for a client in a region.

Caching: the TTL on the wire is the record's AWS TTL; a client caches each record for
`ttl * time_scale` seconds (time_scale is 1.0 on AWS, so one code path). Each record of a
CNAME chain is kept for its own TTL, as a recursive resolver keeps it: a CNAME with TTL 3,600
pins its target for 3,600 s, even when the target's A record (TTL 60) is asked again every
minute. Caching the chain for its shortest TTL would let a client follow a routing change the
real ones never see. Records are kept per (owner name, client region); the no-cache mode asks
the server on every call, as a client with DNS caching disabled would.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from gameday.errors import GamedayError, UsageError
from gameday.lazy import lazy_module

if TYPE_CHECKING:
    import dns.edns as _dns_edns
    import dns.exception as _dns_exception
    import dns.flags as _dns_flags
    import dns.message as _dns_message
    import dns.name as _dns_name
    import dns.query as _dns_query
    import dns.rcode as _dns_rcode
    import dns.rdatatype as _dns_rdatatype
    import dns.resolver as _dns_resolver
else:
    _dns_edns = lazy_module("dns.edns")
    _dns_exception = lazy_module("dns.exception")
    _dns_flags = lazy_module("dns.flags")
    _dns_message = lazy_module("dns.message")
    _dns_name = lazy_module("dns.name")
    _dns_query = lazy_module("dns.query")
    _dns_rcode = lazy_module("dns.rcode")
    _dns_rdatatype = lazy_module("dns.rdatatype")
    _dns_resolver = lazy_module("dns.resolver")


MAX_CNAME_HOPS = 8
DNS_PORT = 53


class DnsResolutionError(GamedayError):
    """The name could not be resolved to addresses (NXDOMAIN, no answer, no server reply)."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"DNS: {name}: {reason}")
        self.name = name
        self.reason = reason


class _Retryable(Exception):
    """A server answer worth asking again (SERVFAIL, REFUSED): real stubs retry these."""


@dataclass(frozen=True)
class Resolution:
    """One answer as the client holds it.

    `ttl` is the smallest TTL on the wire along the CNAME chain (AWS seconds); the answer holds
    until `expires_at` (time.monotonic()), when its first record expires. `cnames` is the chain
    followed, in order; `from_cache` is true when no record of it was asked of the server.
    """

    name: str
    addresses: tuple[str, ...]
    ttl: int
    cnames: tuple[str, ...]
    resolved_at: float  # time.time() of the server answer
    expires_at: float  # time.monotonic() deadline of the cache entry
    from_cache: bool = False


@dataclass(frozen=True)
class _Record:
    """One record set as a client caches it: a CNAME (`target`) or the A addresses of an owner."""

    target: str | None
    addresses: tuple[str, ...]
    ttl: int
    resolved_at: float
    expires_at: float


def parse_nameserver(spec: str) -> list[tuple[str, int]]:
    """`"host:port"`, `"host"` or `"system"` -> [(ip, port), ...] to query in order."""
    if not isinstance(spec, str) or not spec.strip():
        raise UsageError(f"dns_resolver: expected 'system' or host:port, got {spec!r}")
    spec = spec.strip()
    if spec == "system":
        try:
            system = _dns_resolver.Resolver(configure=True)
        except _dns_resolver.NoResolverConfiguration as exc:
            raise UsageError(f"dns_resolver: 'system' but no system resolver is configured ({exc})") from None
        port = int(getattr(system, "port", DNS_PORT) or DNS_PORT)
        servers = [str(ns) for ns in system.nameservers]
        if not servers:
            raise UsageError("dns_resolver: 'system' but /etc/resolv.conf names no nameserver")
        return [(ns, port) for ns in servers]
    host, sep, port_text = spec.rpartition(":")
    if not sep or ("]" in spec and not host.endswith("]")):  # bare host (or bare IPv6)
        host, port_text = spec, str(DNS_PORT)
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise UsageError(f"dns_resolver: port must be a number, got {spec!r}") from None
    if not (0 < port < 65536) or not host:
        raise UsageError(f"dns_resolver: expected 'system' or host:port, got {spec!r}")
    return [(host, port)]


class Resolver:
    """Resolves names to A-record addresses through one configured DNS server, with a TTL cache.

    Thread-safe: the traffic generator's worker threads share one resolver; on a cache miss
    only one thread per (name, region) asks the server, the others wait for its answer.
    """

    def __init__(
        self,
        nameserver: str = "system",
        *,
        time_scale: float = 1.0,
        cache: bool = True,
        client_addresses: Mapping[str, str] | None = None,
        client_address: str | None = None,
        timeout_s: float = 2.0,
        attempts: int = 3,
    ) -> None:
        if not (time_scale > 0):
            raise UsageError(f"time_scale: expected a number > 0, got {time_scale!r}")
        if attempts < 1:
            raise UsageError(f"attempts: expected at least 1, got {attempts!r}")
        self.nameserver = nameserver
        self.servers = parse_nameserver(nameserver)
        self.time_scale = float(time_scale)
        self.cache_enabled = bool(cache)
        self.client_addresses = dict(client_addresses or {})
        self.default_client_address = client_address
        self.timeout_s = float(timeout_s)
        self.attempts = int(attempts)
        self.queries_sent = 0  # server round trips (cache misses and retries), for tests and progress
        self._cache: dict[tuple[str, str | None], _Record] = {}   # (owner, client region) -> record
        self._key_locks: dict[tuple[str, str | None], threading.Lock] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_deployment(cls, dep: Any, *, cache: bool = True, **kwargs: Any) -> Resolver:
        """From a gameday.deployment.Deployment (attribute access): dns_resolver, time_scale, regions."""
        addresses = {
            r.name: r.client_address for r in getattr(dep, "regions", []) or [] if getattr(r, "client_address", None)
        }
        return cls(
            dep.dns_resolver,
            time_scale=getattr(dep, "time_scale", 1.0) or 1.0,
            cache=cache,
            client_addresses=addresses,
            **kwargs,
        )

    @property
    def mode(self) -> str:
        return "ttl" if self.cache_enabled else "no-cache"

    def cache_seconds(self, ttl: int) -> float:
        """How long a client keeps an answer with this wire TTL: ttl * time_scale."""
        return max(0.0, ttl * self.time_scale)

    def flush(self) -> None:
        with self._lock:
            self._cache.clear()

    def client_address_for(self, region: str | None) -> str | None:
        if region is None:
            return self.default_client_address
        if region not in self.client_addresses:
            raise UsageError(f"client region {region!r}: no client_address known for it "
                             f"(known: {sorted(self.client_addresses) or 'none'})")
        return self.client_addresses[region]

    def resolve(self, name: str, *, region: str | None = None) -> Resolution:
        """Addresses for `name` as a client in `region` (None: no client subnet unless configured) sees them."""
        key = (name.rstrip(".").lower(), region)
        if not self.cache_enabled or _address_literal(key[0]) is not None:
            return self.query(key[0], client_address=self.client_address_for(region))
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one server query per name and region at a time; the others reuse its records
            return self._walk(key[0], region)

    def _walk(self, name: str, region: str | None) -> Resolution:
        def keep(answered: dict[str, _Record]) -> None:
            now = time.monotonic()
            with self._lock:
                self._cache.update({(owner, region): r for owner, r in answered.items() if r.expires_at > now})

        return self._follow(name, self.client_address_for(region), cached=lambda owner: self._cached((owner, region)),
                            keep=keep)

    def _cached(self, key: tuple[str, str | None]) -> _Record | None:
        with self._lock:
            entry = self._cache.get(key)
        if entry is None or entry.expires_at <= time.monotonic():
            return None
        return entry

    def query(self, name: str, *, client_address: str | None = None) -> Resolution:
        """Ask the server now (no cache), following CNAMEs until A records. An address literal is its
        own answer (a URL may name an address), as getaddrinfo treats it."""
        literal = _address_literal(name)
        if literal is not None:
            return Resolution(name, (literal,), 0, (), time.time(), time.monotonic())
        return self._follow(name.rstrip(".").lower(), client_address, cached=lambda owner: None,
                            keep=lambda answered: None)

    def _follow(self, name: str, client_address: str | None, *, cached: Callable[[str], _Record | None],
                keep: Callable[[dict[str, _Record]], None]) -> Resolution:
        """Follow the chain from `name`, record by record: a record `cached` holds is used as it is, the
        first one missing is asked of the server (whose answer, every record of its chain, is `keep`t)."""
        fresh: dict[str, _Record] = {}     # what this call's own queries answered (a TTL 0 record is used once)
        owner, asked = name, False
        cnames: list[str] = []
        used: list[_Record] = []
        for _ in range(MAX_CNAME_HOPS + 1):
            record = fresh.get(owner) or cached(owner)
            if record is None:
                answered = self._records(name, owner, client_address)
                asked = True
                fresh.update(answered)
                keep(answered)
                record = fresh.get(owner)
                if record is None:
                    raise DnsResolutionError(name, f"no A record in the answer for {owner}")
            used.append(record)
            if record.target is None:
                return Resolution(name, record.addresses, min(r.ttl for r in used), tuple(cnames),
                                  min(r.resolved_at for r in used), min(r.expires_at for r in used),
                                  from_cache=not asked)
            cnames.append(record.target)
            owner = record.target
        raise DnsResolutionError(name, f"more than {MAX_CNAME_HOPS} CNAME hops")

    def _records(self, name: str, owner: str, client_address: str | None) -> dict[str, _Record]:
        """Ask the server for `owner` now: every record of its answer's chain, by owner name."""
        response = self._exchange(_dns_name.from_text(owner), client_address)
        rcode = response.rcode()
        if rcode == _dns_rcode.NXDOMAIN:
            raise DnsResolutionError(name, f"NXDOMAIN for {owner}")
        if rcode != _dns_rcode.NOERROR:
            raise DnsResolutionError(name, f"server answered {_dns_rcode.to_text(rcode)}")
        chain = response.resolve_chaining()
        at, now = time.time(), time.monotonic()
        records: dict[str, _Record] = {}
        for rrset in chain.cnames:
            ttl = int(rrset.ttl)
            records[_owner(rrset.name)] = _Record(_owner(rrset[0].target), (), ttl, at, now + self.cache_seconds(ttl))
        if chain.answer is not None:
            ttl = int(chain.answer.ttl)
            records[_owner(chain.canonical_name)] = _Record(None, tuple(rd.address for rd in chain.answer), ttl, at,
                                                            now + self.cache_seconds(ttl))
        return records

    def _exchange(self, target: _dns_name.Name, client_address: str | None) -> _dns_message.QueryMessage:
        """One question, retried (timeouts, socket errors, SERVFAIL/REFUSED) across the servers."""
        options: list[_dns_edns.Option] = [_dns_edns.ECSOption(client_address, 32)] if client_address else []
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=0.05, max=0.5),
            retry=retry_if_exception_type((_dns_exception.Timeout, OSError, _Retryable, _dns_exception.FormError)),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    host, port = self.servers[(attempt.retry_state.attempt_number - 1) % len(self.servers)]
                    query = _dns_message.make_query(target, _dns_rdatatype.A, use_edns=0 if options else None,
                                                   options=options or None)
                    query.flags |= _dns_flags.RD
                    with self._lock:
                        self.queries_sent += 1
                    response, _ = _dns_query.udp_with_fallback(query, host, timeout=self.timeout_s, port=port)
                    if not isinstance(response, _dns_message.QueryMessage):  # an answer to a query parses as one
                        raise _dns_exception.FormError(f"not a query response: {type(response).__name__}")
                    if response.rcode() in (_dns_rcode.SERVFAIL, _dns_rcode.REFUSED):
                        raise _Retryable(_dns_rcode.to_text(response.rcode()))
                    return response
        except _dns_exception.Timeout:
            raise DnsResolutionError(target.to_text(omit_final_dot=True),
                                     f"no answer from {self.nameserver} in {self.attempts} attempts "
                                     f"of {self.timeout_s:g} s") from None
        except _Retryable as exc:
            raise DnsResolutionError(target.to_text(omit_final_dot=True),
                                     f"server answered {exc} {self.attempts} times") from None
        except (OSError, _dns_exception.FormError) as exc:
            raise DnsResolutionError(target.to_text(omit_final_dot=True),
                                     f"cannot query {self.nameserver}: {exc}") from None
        raise AssertionError("unreachable")  # pragma: no cover


def _address_literal(name: str) -> str | None:
    try:
        return str(ipaddress.ip_address(name.strip("[]")))
    except ValueError:
        return None


def _owner(name: _dns_name.Name) -> str:
    return str(name.to_text(omit_final_dot=True)).lower()
