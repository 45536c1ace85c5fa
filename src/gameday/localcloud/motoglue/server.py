"""The AWS API endpoint: moto's server app, one HTTP endpoint for every region,
with the local cloud's control routes (/_gameday/...) served beside it, and IAM enforced in
front of moto for requests signed by IAM users and assumed roles (gameday/localcloud/iam/)."""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from moto.moto_server.threaded_moto_server import MotoRequestHandler
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import ThreadedWSGIServer

from gameday.localcloud.awslambda import environment_errors, reserved_concurrency
from gameday.localcloud.iam import enforcement
from gameday.localcloud.motoglue import patches
from gameday.localcloud.process import startup
from gameday.localcloud.process.context import ControlRoutes

CONTROL_PREFIX = "/_gameday/"

# moto lists its package directory and inspects the response class on every request; both
# answers never change at run time and were ~30% of the endpoint's CPU per request.
MODULE_LIST = patches.declare(
    "moto.backends:list_of_moto_modules", kind="replace", signature="() -> collections.abc.Iterable[str]",
    why="a listdir + ~200 isdir calls under a global lock on every request; cached once")
METHOD_NAMES = patches.declare(
    "moto.core.responses:method_names_from_class", kind="wrap", signature="(clazz: 'object') -> 'list[str]'",
    why="inspect.getmembers of the response class on every request; memoised per class")

# Per request: every `xxx_backends[account][region]` lookup (moto's handlers do several per request,
# and so do the data plane, the runtime and replication) takes moto's global backend lock, copies
# the account keys into a list and scans the list of every BackendDict ever used, comparing with a
# Python __eq__. When the account's backend exists it is returned directly; otherwise moto's own
# code runs (moto's reset clears the dict and its registry together, so "present" implies
# "registered").
BACKEND_LOOKUP = patches.declare(
    "moto.core.base_backend:BackendDict.__getitem__", kind="wrap",
    signature="(self, account_id: str) -> moto.core.base_backend.AccountSpecificBackend[~SERVICE_BACKEND]",
    why="an existing account backend returned without moto's global lock and registry scan")


def _fast_backend_lookup(original: Callable[..., Any]) -> Callable[..., Any]:
    def __getitem__(self: dict[str, Any], account_id: str) -> Any:
        try:
            return dict.__getitem__(self, account_id)
        except KeyError:
            return original(self, account_id)

    return __getitem__


def install_speedups() -> None:
    """Apply the caches above and gameday/localcloud/process/startup.py's patches (idempotent); before the
    endpoint serves its first request."""
    startup.install()
    if not MODULE_LIST._applied:
        modules = tuple(MODULE_LIST.original()())
        MODULE_LIST.apply(lambda: modules)
    if not METHOD_NAMES._applied:
        METHOD_NAMES.apply(_method_names_cache(METHOD_NAMES.original()))
    if not BACKEND_LOOKUP._applied:
        BACKEND_LOOKUP.apply(_fast_backend_lookup(BACKEND_LOOKUP.original()))


def _method_names_cache(method_names_from_class: Callable[[Any], list[str]]) -> Callable[[Any], list[str]]:
    """Memoised per class and per number of class attributes: the local cloud adds operations
    to moto's response classes (patches.declare(kind="add")), which must show up at once."""
    cache: dict[tuple[Any, int], list[str]] = {}

    def cached(clazz: Any) -> list[str]:
        key = (clazz, len(vars(clazz)))
        names = cache.get(key)
        if names is None:
            names = cache[key] = method_names_from_class(clazz)
        return names

    return cached


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


def aws_app(routes: ControlRoutes) -> Callable[..., Any]:
    """What the endpoint serves: control routes, else IAM's decision, else moto. The Lambda
    runtime's in-process calls use the same stack, so they are authorised as over HTTP."""
    enforcement.install()
    return ControlMiddleware(enforcement.IamMiddleware(DomainDispatcherApplication(create_backend_app)), routes)


class _EndpointServer(ThreadedWSGIServer):
    """What werkzeug's make_server(threaded=True) builds, quiet about clients that hang up."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (a stopped checker, a killed run) is not an error worth a traceback."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class AwsEndpoint:
    """moto in server mode on host:port (0 = a free port), in a background thread.

    iam: enforce IAM for IAM users' and assumed roles' keys (True), or not (False); None leaves the
    process-wide switch as it is (on, unless GAMEDAY_LOCAL_IAM=off). The control route
    /_gameday/iam reads and changes it."""

    def __init__(self, host: str, port: int, routes: ControlRoutes, iam: bool | None = None) -> None:
        install_speedups()
        if iam is not None:
            enforcement.set_enabled(iam)
        enforcement.control_routes(routes.add)
        environment_errors.control_routes(routes.add)   # GetFunctionConfiguration's Environment.Error
        reserved_concurrency.install()                  # GetFunction's Concurrency 0
        app = aws_app(routes)
        # Bind ourselves: a taken port raises OSError (EADDRINUSE) here, where the caller turns it
        # into a one-line error (werkzeug would print and exit the process).
        listener = socket.create_server((host, port), backlog=128)
        self._listener = listener
        self._address: tuple[str, int] = listener.getsockname()[:2]  # the server serves a dup of this socket
        self._server = _EndpointServer(host, port, app, QuietRequestHandler, fd=listener.fileno())
        self._thread = threading.Thread(target=self._server.serve_forever, name="aws-endpoint", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._address
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._listener.close()
        self._thread.join(timeout=5)
