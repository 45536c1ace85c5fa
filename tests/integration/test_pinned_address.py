"""The address pinning really sends the connection to the address our resolver answered.

Why: the pinning goes through requests' `HTTPAdapter.build_connection_pool_key_attributes`, which
exists only from requests 2.32. On an older requests the hook is never called, the URL's host is
resolved by the system resolver instead, and every "served by" figure silently comes from the
wrong place. Two HTTP servers listen on the same port at 127.0.0.2 and 127.0.0.3; DNS answers
127.0.0.3 only; each server records the local address its connections arrived at.
"""

from __future__ import annotations

import re
import socket
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from dnslib import QTYPE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer
from requests.adapters import HTTPAdapter

from gameday.observe.pinned_http import PinnedClient
from gameday.observe.resolver import Resolver

NAME = "pinned.gameday.test"
ANSWER, DECOY = "127.0.0.3", "127.0.0.2"
PROJECT = Path(__file__).resolve().parents[2]


class _Zone(BaseResolver):
    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = request.reply()
        if str(request.q.qname).rstrip(".").lower() == NAME and request.q.qtype == QTYPE.A:
            reply.add_answer(RR(NAME, QTYPE.A, rdata=A(ANSWER), ttl=60))
        return reply


class _Recording(ThreadingHTTPServer):
    daemon_threads = True
    arrivals: list[tuple[str, str]]


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        server: Any = self.server
        server.arrivals.append((self.connection.getsockname()[0], self.headers.get("Host", "")))
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def two_servers() -> Iterator[tuple[dict[str, _Recording], int]]:
    probe = socket.create_server((ANSWER, 0))
    port = probe.getsockname()[1]
    probe.close()
    servers: dict[str, _Recording] = {}
    threads = []
    for address in (DECOY, ANSWER):
        server = _Recording((address, port), _Handler)
        server.arrivals = []
        servers[address] = server
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        threads.append(thread)
    try:
        yield servers, port
    finally:
        for server in servers.values():
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join(timeout=5)


@pytest.fixture
def dns() -> Iterator[str]:
    server = DNSServer(_Zone(), address="127.0.0.1", port=0, logger=DNSLogger(log="-", prefix=False))
    server.start_thread()
    try:
        yield f"127.0.0.1:{server.server.server_address[1]}"
    finally:
        server.stop()


def test_the_connection_goes_to_the_address_dns_answered(two_servers: tuple[dict[str, _Recording], int],
                                                         dns: str) -> None:
    servers, port = two_servers
    client = PinnedClient(f"http://{NAME}:{port}", Resolver(dns, cache=False))
    try:
        for _ in range(3):
            response = client.get("/health")
            assert response.status == 200 and response.address == ANSWER
    finally:
        client.close()
    assert [address for address, _ in servers[ANSWER].arrivals] == [ANSWER] * 3
    assert {host.split(":")[0] for _, host in servers[ANSWER].arrivals} == {NAME}, "the request still names the host"
    assert servers[DECOY].arrivals == [], "a request went to an address DNS never answered"


def test_requests_is_pinned_to_a_version_with_the_hook_the_pinning_uses() -> None:
    assert hasattr(HTTPAdapter, "build_connection_pool_key_attributes"), requests.__version__
    dependencies = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["dependencies"]
    (spec,) = [d for d in dependencies if re.match(r"requests\b", d)]
    floor = re.search(r">=\s*(\d+)\.(\d+)", spec)
    assert floor and (int(floor.group(1)), int(floor.group(2))) >= (2, 32), spec
    major, minor = (int(p) for p in requests.__version__.split(".")[:2])
    assert (major, minor) >= (2, 32)
