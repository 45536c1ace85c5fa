"""The end-of-run webhook, received by a real HTTP server on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gameday.errors import UsageError
from gameday.report.notify import check_url, notify


class Receiver(ThreadingHTTPServer):
    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.bodies: list[dict] = []
        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/gameday?token=s3cret"


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        length = int(self.headers["Content-Length"])
        self.server.bodies.append(json.loads(self.rfile.read(length)))
        status = self.server.statuses.pop(0) if self.server.statuses else 204
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    server = Receiver(list(getattr(request, "param", [])))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


SUMMARY = {"run_id": "r1", "rows": [{"scenario": "region_failover", "verdict": "pass", "detection_s": 0.3}],
           "report": "/reports/r1/report.html"}


def test_the_summary_is_posted_as_json(receiver: Receiver) -> None:
    said: list[str] = []
    assert notify(receiver.url, SUMMARY, say=said.append)
    assert receiver.bodies == [SUMMARY]
    assert said == [f"notify: summary delivered to http://127.0.0.1:{receiver.server_address[1]}/hooks/gameday "
                    "(HTTP 204)"]
    assert "s3cret" not in said[0]


@pytest.mark.parametrize("receiver", [[503, 200]], indirect=True)
def test_a_5xx_is_tried_again(receiver: Receiver) -> None:
    assert notify(receiver.url, SUMMARY, say=lambda line: None, wait_s=0.01)
    assert len(receiver.bodies) == 2


@pytest.mark.parametrize("receiver", [[400]], indirect=True)
def test_a_refused_delivery_is_logged_once_and_never_raises(receiver: Receiver) -> None:
    said: list[str] = []
    assert not notify(receiver.url, SUMMARY, say=said.append, wait_s=0.01)
    assert len(receiver.bodies) == 1 and "HTTP 400" in said[0] and "the run's result stands" in said[0]


def test_nobody_listening_is_logged_and_never_raises() -> None:
    import socket

    with socket.socket() as probe:                     # a loopback port with nothing behind it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    said: list[str] = []
    assert not notify(f"http://127.0.0.1:{port}/x", SUMMARY, say=said.append, wait_s=0.01)
    assert "ConnectionError" in said[0]


@pytest.mark.parametrize("url", ["ftp://x/y", "not a url", "http://"])
def test_a_bad_url_is_a_usage_error_naming_the_option(url: str) -> None:
    with pytest.raises(UsageError, match=r"^--notify: expected an http:// or https:// URL"):
        check_url(url)
