"""HTTP/1.1 on a data-plane socket, parsed by httptools (the C parser uvicorn uses).

http.server parsed every request's headers with the email package: about a third of the CPU the
cloud process spent serving a Route 53 probe (16 checkers per health check, ten probes a second
each at time scale 0.01) and a large share of a PutItem's. Here: one thread per connection, as
before; keep-alive and pipelining; chunked bodies decoded by the parser; `Expect: 100-continue`
answered (curl sends it for bodies over 1 KiB); a body over the limit gets 413, a malformed
request (or headers over 64 KiB) 400, after the requests before it are answered, and the
connection closes; an Upgrade (h2c, websocket) is answered as HTTP/1.1 and the connection closed.
With TLS the server hands over a wrapped socket and the handshake is done here, in the
connection's thread; a failed handshake closes the connection without a word.
"""

from __future__ import annotations

import collections
import email.utils
import socket
import socketserver
import ssl
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import httptools

READ_BYTES = 16384  # recv allocates this much while it waits: one buffer per idle keep-alive connection
MAX_HEADER_BYTES = 64 * 1024  # request line + header names and values
EARLY_WRITE_TIMEOUT_S = 1.0   # an early answer (504) to a client that does not read gives up after this
HANDSHAKE_TIMEOUT_S = 10.0  # a TLS client that stalls in its handshake is dropped after this
DRAIN_TIMEOUT_S = 2.0  # how long a rejected client may go on sending before the connection closes
REASONS = {status.value: status.phrase for status in HTTPStatus}


@dataclass
class Incoming:
    """One request as read from the connection."""

    method: str
    target: str                      # path?query as sent
    headers: list[tuple[str, str]]   # in order, names as sent
    body: bytes
    keep_alive: bool


Reply = tuple[int, list[tuple[str, str]], bytes]


class BodyTooLarge(Exception):
    """Raised from a parser callback; feed_data reports it as a callback error (413)."""


class HeadersTooLarge(Exception):
    """Request line and headers over MAX_HEADER_BYTES (400, as http.server's line limits did)."""


def _declares_body(incoming: Incoming) -> bool:
    for name, value in incoming.headers:
        lowered = name.lower()
        if lowered == "transfer-encoding" or (lowered == "content-length" and value.strip() not in ("", "0")):
            return True
    return False


class _Reader:
    """httptools callbacks: collects complete requests in order."""

    def __init__(self, parser_owner: ConnectionHandler, max_body: int) -> None:
        self._owner = parser_owner
        self._max_body = max_body
        self.parser: Any = None
        self.ready: collections.deque[Incoming] = collections.deque()
        self.too_large = False
        self._url: list[bytes] = []
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._size = 0
        self._header_bytes = 0

    def on_message_begin(self) -> None:
        self._url, self._headers, self._body, self._size, self._header_bytes = [], [], [], 0, 0

    def on_url(self, url: bytes) -> None:
        self._header_bytes += len(url)
        if self._header_bytes > MAX_HEADER_BYTES:
            raise HeadersTooLarge()
        self._url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES:
            raise HeadersTooLarge()
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        length = next((v for n, v in self._headers if n.lower() == "content-length"), "")
        if length.strip().isdigit() and int(length) > self._max_body:
            self.too_large = True  # 413 at once: no need to receive the body first
            raise BodyTooLarge()
        expects = any(n.lower() == "expect" and v.lower() == "100-continue" for n, v in self._headers)
        if expects and self.parser.get_http_version() == "1.1" and not self.ready:
            self._owner.send_raw(b"HTTP/1.1 100 Continue\r\n\r\n")  # curl waits for it (bodies over 1 KiB)

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._max_body:
            self.too_large = True
            raise BodyTooLarge()
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.ready.append(Incoming(method=self.parser.get_method().decode("latin-1"),
                                   target=b"".join(self._url).decode("latin-1"),
                                   headers=self._headers, body=b"".join(self._body),
                                   keep_alive=self.parser.should_keep_alive()))


class _DateHeader:
    """The Date header's value, formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def __call__(self) -> str:
        now = int(time.time())
        if now != self._second:
            self._value = email.utils.formatdate(now, usegmt=True)
            self._second = now
        return self._value


_date = _DateHeader()


class _Exchange:
    """One request's answer, written once: by the connection's thread, or earlier by another
    thread (a 504 at the integration timeout while the handler still runs)."""

    __slots__ = ("_handler", "_head", "_lock", "_answered")

    def __init__(self, handler: ConnectionHandler, head: bool) -> None:
        self._handler = handler
        self._head = head
        self._lock = threading.Lock()
        self._answered = False

    def answer(self, reply: Reply, close: bool) -> bool:
        """False if it was already answered."""
        with self._lock:
            if self._answered:
                return False
            self._answered = True
            self._handler.write(reply, head=self._head, close=close)
            return True

    def answer_early(self, reply: Reply) -> bool:
        """From another thread while the handler runs: answer, then let the connection go (the
        client sees it close; stop() need not wait for the handler). Bounded: a client that does
        not read cannot hold the caller (the runtime's one watchdog thread) for long."""
        with self._lock:
            if self._answered:
                return False
            self._answered = True
            self._handler.request.settimeout(EARLY_WRITE_TIMEOUT_S)
            self._handler.write(reply, head=self._head, close=True)
        self._handler.detach()
        return True


class ConnectionHandler(socketserver.BaseRequestHandler):
    """Serves one connection; the server provides `respond(Incoming, peer, answer_now) -> Reply`
    (answer_now(reply) answers before respond returns; the connection then closes),
    `reject(status) -> Reply` (400/413), `max_body`, and optionally `detach(sock)` (the
    connection was answered early and closed: its thread may stay in a handler a while)."""

    idle_timeout_s = 120.0  # idle keep-alive connections are closed after this (stop() closes them at once)

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if isinstance(sock, ssl.SSLSocket):  # wrapped by the server, not yet shaken hands
            sock.settimeout(HANDSHAKE_TIMEOUT_S)
            try:
                sock.do_handshake()
            except (ssl.SSLError, OSError):  # no SNI, a client that rejects the certificate, a port scan
                return
        sock.settimeout(self.idle_timeout_s)
        reader = _Reader(self, self.server.max_body)  # type: ignore[attr-defined]
        reader.parser = parser = httptools.HttpRequestParser(reader)
        while True:
            try:
                data = sock.recv(READ_BYTES)
            except OSError:  # timeout, reset, or shut down by stop()
                return
            if not data:
                return
            rejected: int | None = None
            try:
                parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                # h2c or websocket upgrade: answered as HTTP/1.1 (as API Gateway does), then closed;
                # the parser took any bytes after the headers for the new protocol
                upgrading = reader.ready[-1] if reader.ready else None
                if upgrading is not None and _declares_body(upgrading):
                    reader.ready.pop()
                    rejected = 400
                elif upgrading is not None:
                    upgrading.keep_alive = False
                else:
                    rejected = 400
            except httptools.HttpParserError:
                rejected = 413 if reader.too_large else 400
            # requests completed before an error are answered first, in order
            if not self._answer_ready(reader):
                return
            if rejected is not None:
                self.write(self.server.reject(rejected), head=False, close=True)  # type: ignore[attr-defined]
                self._drain(sock)
                return

    def _answer_ready(self, reader: _Reader) -> bool:
        """Answers the complete requests in order; False once the connection is to close."""
        while reader.ready:
            incoming = reader.ready.popleft()
            exchange = _Exchange(self, head=incoming.method == "HEAD")
            reply = self.server.respond(incoming, self.client_address,  # type: ignore[attr-defined]
                                        exchange.answer_early)
            if not exchange.answer(reply, close=not incoming.keep_alive) or not incoming.keep_alive:
                return False  # answered early (the connection was told it closes), or closing anyway
        return True

    def detach(self) -> None:
        try:
            self.request.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        detach = getattr(self.server, "detach", None)
        if detach is not None:
            detach(self.request)

    @staticmethod
    def _drain(sock: socket.socket) -> None:
        """Read what the client still sends before closing: closing with unread input makes the
        kernel reset the connection, and the client may lose the answer (a 413 mid-upload)."""
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(DRAIN_TIMEOUT_S)
            deadline = time.monotonic() + DRAIN_TIMEOUT_S
            while sock.recv(READ_BYTES) and time.monotonic() < deadline:
                pass
        except OSError:
            pass

    def send_raw(self, data: bytes) -> None:
        self.request.sendall(data)

    def write(self, reply: Reply, head: bool, close: bool) -> None:
        status, headers, body = reply
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, '')}", f"Date: {_date()}",
                 f"Content-Length: {len(body)}"]
        lines.extend(f"{name}: {value}" for name, value in headers)
        if close:
            lines.append("Connection: close")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        if not head:
            data += body
        try:
            self.request.sendall(data)
        except OSError:
            pass  # the client went away; nothing to tell it

