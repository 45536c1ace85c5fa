"""Real servers on loopback for the harness's client-side tests (resolver, global client, traffic).

Test modules import the fixtures (`from loopback_servers import dns_zone, regions`) so they stay
out of the shared tests/harness/conftest.py.

- `dns_zone`: a dnslib UDP+TCP server answering the global domain with a CNAME to a region's
  host and that host with an A record, TTL 60 on the wire; the answer is switchable.
- `regions`: two HTTP/1.1 keep-alive servers on two loopback addresses on ONE port, each
  answering POST /item and GET /item/{id} (no region header, as API Gateway and the reference
  handlers send none; `claims` makes one send a region header, true or not), recording Host headers
  and connections; a region can be told to answer 500, or be stopped.
Every server a fixture starts, it stops (connections included).
"""

from __future__ import annotations

import errno
import json
import random
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from dnslib import CNAME, QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer
from tenacity import Retrying, retry_if_exception, stop_after_attempt

DOMAIN = "api.gameday.test"
WIRE_TTL = 60
TIME_SCALE = 0.01  # client cache = 60 * 0.01 = 0.6 s
REGION_NAMES = ("eu-west-1", "us-east-1")


def host_of(region: str) -> str:
    return f"abc{region.replace('-', '')}.execute-api.{region}.amazonaws.com"


# -- DNS -------------------------------------------------------------------------------------------
class SwitchableZone(BaseResolver):
    """DOMAIN CNAME -> host_of(active region); host_of(r) A -> address of r. Records what it was asked."""

    def __init__(self, addresses: dict[str, str]) -> None:
        self.addresses = addresses
        self.active = REGION_NAMES[0]
        self.ttl = WIRE_TTL
        self.cname_ttl: int | None = None  # the CNAME's own TTL (None: the same as the A records')
        self.cname_only = False  # answer DOMAIN with the CNAME alone (the client must ask again)
        self.servfail_next = 0  # answer SERVFAIL to this many next queries
        self.queries: list[tuple[str, str | None]] = []  # (qname, ECS "addr/len" or None)
        self._lock = threading.Lock()

    host_of = staticmethod(host_of)

    def switch(self, region: str) -> None:
        self.active = region

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        qname = str(request.q.qname).rstrip(".").lower()
        with self._lock:
            self.queries.append((qname, _ecs(request)))
            if self.servfail_next > 0:
                self.servfail_next -= 1
                reply = request.reply()
                reply.header.rcode = RCODE.SERVFAIL
                return reply
        reply = request.reply()
        hosts = {host_of(r).lower(): a for r, a in self.addresses.items()}
        if qname == DOMAIN:
            target = host_of(self.active)
            cname_ttl = self.ttl if self.cname_ttl is None else self.cname_ttl
            reply.add_answer(RR(DOMAIN, QTYPE.CNAME, rdata=CNAME(target), ttl=cname_ttl))
            if not self.cname_only:
                reply.add_answer(RR(target, QTYPE.A, rdata=A(self.addresses[self.active]), ttl=self.ttl))
        elif qname in hosts:
            reply.add_answer(RR(qname, QTYPE.A, rdata=A(hosts[qname]), ttl=self.ttl))
        else:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply

    def asked(self, name: str = DOMAIN) -> int:
        with self._lock:
            return sum(1 for q, _ in self.queries if q == name)


def _ecs(request: DNSRecord) -> str | None:
    """The EDNS0 client subnet option (code 8) of a query, as "a.b.c.d/len"."""
    for rr in request.ar:
        for option in getattr(rr, "rdata", None) or []:
            if getattr(option, "code", None) == 8:
                data = bytes(option.data)
                return ".".join(str(b) for b in data[4:8].ljust(4, b"\0")) + f"/{data[2]}"
    return None


@dataclass
class DnsFixture:
    zone: SwitchableZone
    address: str
    domain: str = DOMAIN
    wire_ttl: int = WIRE_TTL
    time_scale: float = TIME_SCALE

    @property
    def resolver_spec(self) -> str:
        return self.address

    @property
    def cache_s(self) -> float:
        return self.wire_ttl * self.time_scale


# -- HTTP regions ----------------------------------------------------------------------------------
@dataclass
class RegionServer:
    name: str
    address: str
    server: Any = None
    status_override: int | None = None
    claims: str | None = None           # a region header this server sends (a handler's claim)
    hosts: list[str] = field(default_factory=list)
    connections: int = 0
    items: set[int] = field(default_factory=set)
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    sockets: list[socket.socket] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    region: RegionServer  # set on the per-server subclass

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        with self.region.lock:
            self.region.connections += 1
            self.region.sockets.append(self.connection)

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.region.claims:
            self.send_header("x-gameday-region", self.region.claims)
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> int | None:
        with self.region.lock:
            self.region.hosts.append(self.headers.get("Host", ""))
            self.region.requests += 1
        return self.region.status_override

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        override = self._record()
        if override:
            return self._answer(override, {"error": "forced"})
        if self.path.rstrip("/").endswith("/item") and isinstance(body.get("id"), int):
            with self.region.lock:
                self.region.items.add(body["id"])
            return self._answer(200, {"id": body["id"], "region": self.region.name})
        return self._answer(400, {"error": "bad"})

    def do_GET(self) -> None:  # noqa: N802
        override = self._record()
        if override:
            return self._answer(override, {"error": "forced"})
        tail = self.path.rstrip("/").rsplit("/", 1)[-1]
        if tail.isdigit() and int(tail) in self.region.items:
            return self._answer(200, {"id": int(tail)})
        return self._answer(404, {"error": "item not found"})


class Regions:
    def __init__(self, servers: dict[str, RegionServer], port: int) -> None:
        self.servers = servers
        self.port = port
        self._threads: list[threading.Thread] = []
        self._stopped: set[str] = set()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.servers)

    def __getitem__(self, name: str) -> RegionServer:
        return self.servers[name]

    @property
    def addresses(self) -> dict[str, str]:
        return {n: s.address for n, s in self.servers.items()}

    def region_of_address(self, address: str) -> str | None:
        """What the harness's region map says of an address (each server's own address names it)."""
        return {s.address: n for n, s in self.servers.items()}.get(address)

    def start(self) -> None:
        for s in self.servers.values():
            thread = threading.Thread(target=s.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop_region(self, name: str) -> None:
        """Stop one region's server and close its connections (clients then get refused/reset)."""
        if name in self._stopped:
            return
        self._stopped.add(name)
        s = self.servers[name]
        s.server.shutdown()
        s.server.server_close()
        with s.lock:
            for conn in s.sockets:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        for name in self.servers:
            self.stop_region(name)
        for thread in self._threads:
            thread.join(5)


def _bind_pair() -> tuple[dict[str, RegionServer], int]:
    """Two servers on 127.X.Y.21 and .22 (random X.Y so parallel tests never clash) on one free port."""
    base = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}"
    addresses = {REGION_NAMES[0]: f"{base}.21", REGION_NAMES[1]: f"{base}.22"}
    servers: dict[str, RegionServer] = {}
    port = 0
    try:
        for name, address in addresses.items():
            region = RegionServer(name, address)
            handler = type(f"Handler_{name.replace('-', '_')}", (_Handler,), {"region": region})
            httpd = ThreadingHTTPServer((address, port), handler)
            httpd.daemon_threads = True
            region.server = httpd
            port = httpd.server_address[1]
            servers[name] = region
    except OSError:
        for s in servers.values():
            s.server.server_close()
        raise
    return servers, port


def _dns_servers(zone: SwitchableZone) -> tuple[DNSServer, DNSServer]:
    """UDP on a free port, TCP (truncation fallback) on the same port; both or neither."""
    quiet = DNSLogger(logf=lambda *_: None)
    udp = DNSServer(zone, address="127.0.0.1", port=0, logger=quiet)
    try:
        tcp = DNSServer(zone, address="127.0.0.1", port=udp.server.server_address[1], tcp=True, logger=quiet)
    except OSError:
        udp.server.server_close()
        raise
    return udp, tcp


# -- fixtures ----------------------------------------------------------------------------------------
@pytest.fixture
def regions() -> Iterator[Regions]:
    retrying = Retrying(stop=stop_after_attempt(10), reraise=True,
                        retry=retry_if_exception(lambda e: isinstance(e, OSError) and e.errno == errno.EADDRINUSE))
    servers, port = retrying(_bind_pair)
    group = Regions(servers, port)
    group.start()
    try:
        yield group
    finally:
        group.stop()


@pytest.fixture
def dns_zone(regions: Regions) -> Iterator[DnsFixture]:
    zone = SwitchableZone(regions.addresses)
    retrying = Retrying(stop=stop_after_attempt(10), reraise=True,
                        retry=retry_if_exception(lambda e: isinstance(e, OSError)))
    udp, tcp = retrying(_dns_servers, zone)
    threads = [threading.Thread(target=s.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
               for s in (udp, tcp)]
    for thread in threads:
        thread.start()
    try:
        yield DnsFixture(zone, f"127.0.0.1:{udp.server.server_address[1]}")
    finally:
        for server, thread in zip((udp, tcp), threads, strict=True):
            server.stop()
            server.server.server_close()
            thread.join(5)
