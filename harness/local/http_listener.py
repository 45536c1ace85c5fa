"""HTTP/1.1 on a data-plane socket, parsed by httptools (the C parser uvicorn uses).

http.server parsed every request's headers with the email package: about a third of the CPU the
cloud process spent serving a Route 53 probe (16 checkers per health check, ten probes a second
each at time scale 0.01) and a large share of a PutItem's. Here: one thread per connection, as
before; keep-alive and pipelining; chunked bodies decoded by the parser; `Expect: 100-continue`
answered (curl sends it for bodies over 1 KiB); a body over the limit gets 413 and a malformed
request 400, and the connection closes after either.
"""

from __future__ import annotations

import collections
import email.utils
import socket
import socketserver
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import httptools

READ_BYTES = 16384  # recv allocates this much while it waits: one buffer per idle keep-alive connection
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
    """Raised from the parser's body callback; feed_data reports it as a callback error."""


class _Reader:
    """httptools callbacks: collects complete requests in order."""

    def __init__(self, parser_owner: "ConnectionHandler", max_body: int) -> None:
        self._owner = parser_owner
        self._max_body = max_body
        self.parser: Any = None
        self.ready: collections.deque[Incoming] = collections.deque()
        self.too_large = False
        self._url: list[bytes] = []
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._size = 0

    def on_message_begin(self) -> None:
        self._url, self._headers, self._body, self._size = [], [], [], 0

    def on_url(self, url: bytes) -> None:
        self._url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        for name, value in self._headers:
            if name.lower() == "expect" and value.lower() == "100-continue":
                self._owner.send_raw(b"HTTP/1.1 100 Continue\r\n\r\n")

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

    def __init__(self, handler: "ConnectionHandler", head: bool) -> None:
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


class ConnectionHandler(socketserver.BaseRequestHandler):
    """Serves one connection; the server provides `respond(Incoming, peer, answer_now) -> Reply`
    (answer_now(reply) answers before respond returns; the connection then closes),
    `reject(status) -> Reply` (400/413) and `max_body`."""

    idle_timeout_s = 120.0  # idle keep-alive connections are closed after this (stop() closes them at once)

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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
            try:
                parser.feed_data(data)
            except httptools.HttpParserError:
                self.write(self.server.reject(413 if reader.too_large else 400), head=False, close=True)  # type: ignore[attr-defined]
                self._drain(sock)
                return
            while reader.ready:
                incoming = reader.ready.popleft()
                exchange = _Exchange(self, head=incoming.method == "HEAD")
                reply = self.server.respond(incoming, self.client_address,  # type: ignore[attr-defined]
                                            lambda early: exchange.answer(early, close=True))
                if not exchange.answer(reply, close=not incoming.keep_alive) or not incoming.keep_alive:
                    return  # answered early (the connection was told it closes), or closing anyway

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

