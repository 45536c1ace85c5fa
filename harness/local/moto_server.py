"""The AWS API endpoint: moto's server app, one HTTP endpoint for every region,
with the local cloud's control routes (/_gameday/...) served beside it."""

from __future__ import annotations

import functools
import json
import socket
import threading
from typing import Any, Callable
from urllib.parse import parse_qsl

from moto.moto_server.threaded_moto_server import MotoRequestHandler
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from harness.local import patches
from harness.local.context import ControlRoutes

CONTROL_PREFIX = "/_gameday/"

# moto lists its package directory and inspects the response class on every request; both
# answers never change at run time and were ~30% of the endpoint's CPU per request.
MODULE_LIST = patches.declare(
    "moto.backends:list_of_moto_modules", kind="replace", signature="() -> collections.abc.Iterable[str]",
    why="a listdir + ~200 isdir calls under a global lock on every request; cached once")
METHOD_NAMES = patches.declare(
    "moto.core.responses:method_names_from_class", kind="wrap", signature="(clazz: 'object') -> 'list[str]'",
    why="inspect.getmembers of the response class on every request; memoised per class")


def install_speedups() -> None:
    """Apply the caches above (idempotent); before the endpoint serves its first request."""
    if not MODULE_LIST._applied:
        modules = tuple(MODULE_LIST.original()())
        MODULE_LIST.apply(lambda: modules)
    if not METHOD_NAMES._applied:
        METHOD_NAMES.apply(functools.lru_cache(maxsize=None)(METHOD_NAMES.original()))


class QuietRequestHandler(MotoRequestHandler):
    """No access log line per request: at hundreds of requests/s it costs CPU and hides output."""

    protocol_version = "HTTP/1.1"  # keep-alive: boto3 reuses connections instead of one TCP handshake per call

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class ControlMiddleware:
    """Serves /_gameday/* from ControlRoutes; everything else goes to moto."""

    def __init__(self, app: Callable[..., Any], routes: ControlRoutes) -> None:
        self._app = app
        self._routes = routes

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if not path.startswith(CONTROL_PREFIX):
            return self._app(environ, start_response)
        handler = self._routes.find(environ["REQUEST_METHOD"], path)
        if handler is None:
            status, body = 404, {"error": f"no control route {environ['REQUEST_METHOD']} {path}",
                                 "routes": self._routes.paths()}
        else:
            query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
            raw = b""
            length = int(environ.get("CONTENT_LENGTH") or 0)
            if length:
                raw = environ["wsgi.input"].read(length)
            try:
                payload = json.loads(raw) if raw else None
            except ValueError:
                status, body = 400, {"error": "body is not JSON"}
            else:
                try:
                    status, body = handler(query, payload)
                except (KeyError, ValueError) as exc:
                    status, body = 400, {"error": str(exc)}
        data = json.dumps(body).encode()
        start_response(f"{status} {'OK' if status < 400 else 'Error'}",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]


def _quiet_disconnects(handle_error: Callable[..., Any]) -> Callable[..., Any]:
    """A client that hangs up (a stopped checker, a killed run) is not an error worth a traceback."""

    def handle(request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        handle_error(request, client_address)

    return handle


class AwsEndpoint:
    """moto in server mode on host:port (0 = a free port), in a background thread."""

    def __init__(self, host: str, port: int, routes: ControlRoutes) -> None:
        install_speedups()
        app = ControlMiddleware(DomainDispatcherApplication(create_backend_app), routes)
        # Bind ourselves: a taken port raises OSError (EADDRINUSE) here, where the caller turns it
        # into a one-line error (werkzeug would print and exit the process).
        listener = socket.create_server((host, port), backlog=128)
        self._listener = listener
        self._server: BaseWSGIServer = make_server(host, port, app, threaded=True,
                                                   request_handler=QuietRequestHandler, fd=listener.fileno())
        self._server.daemon_threads = True
        self._server.handle_error = _quiet_disconnects(self._server.handle_error)
        self._thread = threading.Thread(target=self._server.serve_forever, name="aws-endpoint", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._listener.close()
        self._thread.join(timeout=5)
