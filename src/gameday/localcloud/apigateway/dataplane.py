"""The API Gateway data plane of the local cloud: REST API invoke URLs, per region.

moto stores REST APIs but serves no invoke URL. Here each region has an HTTP listener
on its own loopback address (all on one port), which routes requests to the REST APIs
deployed in that region (read from moto's backend on every request, so APIs and stages
created after start are served) and runs AWS_PROXY Lambda integrations through the
LambdaRuntime (in the connection's own thread), answering as API Gateway does: 403 "Missing
Authentication Token" for an unknown route, 500 for a throttled function, 502 for a handler
error or a malformed proxy response, 504 past the 29 s integration timeout (scaled; sent by the
runtime's watchdog while the handler runs on). HTTP itself is
gameday/localcloud/apigateway/http_listener.py.

Routing (docs/local-cloud.md, "Names and addresses"): Host `{restApiId}.execute-api.{region}...`
picks the API and the path must start with one of its stages; any other host (custom
domain, IP) picks the region's API that has the path's first segment as a stage, or, with
no stage in the path, the region's only deployed API with a single stage (a base path
mapping of the custom domain).

With a TLS front (the custom-domain shape) the listeners speak HTTPS only and route as API
Gateway does: an execute-api Host must name an API of the listener's region, a custom domain
of the region goes through its base path mappings (apigateway/custom_domains.py), and any
other Host gets 403 {"message": "Forbidden"}.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import socketserver
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tenacity import retry, retry_if_exception, stop_after_attempt

from gameday.localcloud.apigateway import custom_domains
from gameday.localcloud.apigateway.http_listener import ConnectionHandler, Incoming, Reply
from gameday.localcloud.awslambda.runtime import FunctionNotFound, InvocationError, LambdaRuntime, Throttled
from gameday.localcloud.motoglue import access as moto_access
from gameday.localcloud.process.context import ACCOUNT_ID, CloudContext

INTEGRATION_TIMEOUT_AWS_S = 29
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
API_HOST = re.compile(r"^([a-z0-9]+)\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$")
LAMBDA_URI = re.compile(r"^arn:aws[a-z-]*:apigateway:([a-z0-9-]+):lambda:path/2015-03-31/functions/(.+)/invocations$")
FUNCTION_ARN_REGION = re.compile(r"^arn:aws[a-z-]*:lambda:([a-z0-9-]+):")
STAGE_VARIABLE = re.compile(r"\$\{stageVariables\.([A-Za-z0-9_]+)\}")
PROXY_RESPONSE_KEYS = frozenset({"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"})
# Hop-by-hop or framing headers the gateway sets itself; a handler's values are dropped.
GATEWAY_OWNED = frozenset({"content-length", "connection", "transfer-encoding", "date", "x-amzn-requestid"})


@dataclass
class GatewayResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Request:
    """One HTTP request as the listener read it."""

    region: str
    method: str
    target: str                       # path?query as sent
    headers: list[tuple[str, str]]    # in order, names as sent
    body: bytes
    source_ip: str
    local_port: int
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    scheme: str = "http"


def _error(status: int, message: str, error_type: str, request_id: str) -> GatewayResponse:
    body = json.dumps({"message": message}).encode()
    return GatewayResponse(status, [("Content-Type", "application/json"), ("x-amzn-ErrorType", error_type),
                                    ("x-amzn-RequestId", request_id)], body)


def missing_token(request_id: str) -> GatewayResponse:
    return _error(403, "Missing Authentication Token", "MissingAuthenticationTokenException", request_id)


def forbidden(request_id: str) -> GatewayResponse:
    return _error(403, "Forbidden", "ForbiddenException", request_id)


def internal_error(request_id: str, status: int = 500) -> GatewayResponse:
    return _error(status, "Internal server error", "InternalServerErrorException", request_id)


def _segments(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def _match(template: list[str], segments: list[str]) -> tuple[tuple[int, ...], dict[str, str]] | None:
    """(specificity, path parameters) if the resource template matches the path."""
    params: dict[str, str] = {}
    score: list[int] = []
    for index, part in enumerate(template):
        if part.startswith("{") and part.endswith("+}"):
            rest = segments[index:]
            if not rest:
                return None
            params[part[1:-2]] = "/".join(rest)
            score.append(0)
            return tuple(score), params
        if index >= len(segments):
            return None
        if part.startswith("{") and part.endswith("}"):
            params[part[1:-1]] = segments[index]
            score.append(1)
        elif part == segments[index]:
            score.append(2)
        else:
            return None
    if len(template) != len(segments):
        return None
    return tuple(score), params


def _resource_path(api: Any, resource: Any) -> str:
    """The resource's full path, from moto's parent links (no backend lookups)."""
    parts: list[str] = []
    node = resource
    for _ in range(64):  # a cycle would be a moto bug; do not loop forever
        if node is None or not node.parent_id:
            break
        parts.append(node.path_part)
        node = api.resources.get(node.parent_id)
    return "/" + "/".join(reversed(parts))


def integration_timeout(ctx: CloudContext) -> float:
    """API Gateway's 29 s, scaled, but never below a floor (settings.integration_timeout_floor_s):
    at 0.01 it would be 0.29 s, and a loaded 2-core machine would turn slow-but-healthy handlers
    into spurious 504s."""
    return max(ctx.scale.seconds(INTEGRATION_TIMEOUT_AWS_S), ctx.settings.integration_timeout_floor_s)


class Gateway:
    """What API Gateway does with one request: route, build the proxy event, invoke, map the answer."""

    def __init__(self, ctx: CloudContext, runtime: LambdaRuntime, *, strict_hosts: bool = False) -> None:
        self._ctx = ctx
        self._runtime = runtime
        self._timeout = integration_timeout(ctx)
        self._strict_hosts = strict_hosts

    # --- routing ---

    def _pick_api(self, region: str, host: str, segments: list[str]) -> tuple[Any, Any, list[str]] | None:
        """(api, stage, the path's segments below the stage) or None (403 Forbidden)."""
        if self._strict_hosts:
            return self._pick_api_strict(region, host, segments)
        apis = moto_access.apigateway(region).apis
        first = segments[0] if segments else None
        named = API_HOST.match(host)
        if named is not None:
            api = apis.get(named.group(1))
            if api is None or first is None:
                return None
            stage = api.stages.get(first)
            return (api, stage, segments[1:]) if stage is not None else None
        if first is not None:
            for api in list(apis.values()):
                stage = api.stages.get(first)
                if stage is not None:
                    return api, stage, segments[1:]
        deployed = [api for api in list(apis.values()) if api.stages]
        if len(deployed) == 1 and len(deployed[0].stages) == 1:
            api = deployed[0]
            return api, next(iter(api.stages.values())), segments
        return None

    def _pick_api_strict(self, region: str, host: str, segments: list[str]) -> tuple[Any, Any, list[str]] | None:
        """As API Gateway: `{api}.execute-api.{region}...` is that API of this region, the stage first
        in the path; a custom domain of this region goes through its base path mappings; any
        other Host (another region's API, an IP, a name with no custom domain) is 403 Forbidden."""
        named = API_HOST.match(host)
        if named is not None:
            if named.group(2) != region or not segments:
                return None
            api = moto_access.apigateway(region).apis.get(named.group(1))
            stage = api.stages.get(segments[0]) if api is not None else None
            return (api, stage, segments[1:]) if stage is not None else None
        routed = custom_domains.route(region, host, segments)
        return (routed.api, routed.stage, routed.path_segments) if routed is not None else None

    def handle(self, request: Request, answer_now: Callable[[GatewayResponse], object]) -> GatewayResponse:
        """The response; past the integration timeout, answer_now(504) is called from another
        thread while the handler runs on (its later result is then not sent)."""
        rid = request.request_id
        split = urlsplit(request.target)
        host = ""
        for name, value in request.headers:
            if name.lower() == "host":
                host = value.rsplit(":", 1)[0].lower() if not value.startswith("[") else value.lower()
                break
        segments = _segments(split.path)
        picked = self._pick_api(request.region, host, segments)
        if picked is None:
            return forbidden(rid)
        api, stage, path_segments = picked
        best: tuple[tuple[int, ...], Any, dict[str, str]] | None = None
        for resource in list(api.resources.values()):
            template = _segments(_resource_path(api, resource))
            found = _match(template, path_segments)
            if found is not None and (best is None or found[0] > best[0]):
                best = (found[0], resource, found[1])
        if best is None:
            return missing_token(rid)
        _, resource, path_params = best
        methods = resource.resource_methods
        method = methods.get(request.method) or methods.get("ANY")
        if method is None:
            return missing_token(rid)
        integration = method.method_integration
        if integration is None or integration.integration_type != "AWS_PROXY":
            return internal_error(rid)  # only Lambda proxy integrations are served locally
        uri = STAGE_VARIABLE.sub(lambda m: stage.variables.get(m.group(1), ""), integration.uri or "")
        target = LAMBDA_URI.match(uri)
        if target is None:
            return internal_error(rid)
        function_arn = target.group(2)
        arn_region = FUNCTION_ARN_REGION.match(function_arn)
        event = self._event(request, api=api, stage=stage, resource=resource, split=split,
                            path_segments=path_segments, path_params=path_params, host=host)
        try:
            result = self._runtime.invoke_here(
                arn_region.group(1) if arn_region else request.region, function_arn, event, self._timeout,
                on_timeout=lambda: answer_now(_error(504, "Endpoint request timed out", "IntegrationTimeout", rid)))
        except Throttled:
            return internal_error(rid, 500)
        except FunctionNotFound:
            return internal_error(rid, 500)
        except InvocationError:
            return internal_error(rid, 502)
        return self._proxy_response(result, rid)

    # --- the REST proxy event ---

    def _event(self, request: Request, *, api: Any, stage: Any, resource: Any, split: Any,
               path_segments: list[str], path_params: dict[str, str], host: str) -> dict[str, Any]:
        headers: dict[str, str] = {}
        multi_headers: dict[str, list[str]] = {}
        for name, value in request.headers:
            headers[name] = value
            multi_headers.setdefault(name, []).append(value)
        for name, value in (("X-Forwarded-For", request.source_ip), ("X-Forwarded-Port", str(request.local_port)),
                            ("X-Forwarded-Proto", request.scheme)):
            if name not in headers:
                headers[name] = value
                multi_headers[name] = [value]
        query: dict[str, str] | None = None
        multi_query: dict[str, list[str]] | None = None
        if split.query:
            query, multi_query = {}, {}
            for name, value in parse_qsl(split.query, keep_blank_values=True):
                query[name] = value
                multi_query.setdefault(name, []).append(value)
        body, is_base64 = self._event_body(request.body, headers, api)
        now = time.time()
        resource_path = _resource_path(api, resource)
        path = "/" + "/".join(path_segments)
        full_path = split.path or "/"
        return {
            "resource": resource_path,
            "path": path,
            "httpMethod": request.method,
            "headers": headers,
            "multiValueHeaders": multi_headers,
            "queryStringParameters": query,
            "multiValueQueryStringParameters": multi_query,
            "pathParameters": path_params or None,
            "stageVariables": dict(stage.variables) or None,
            "requestContext": {
                "resourceId": resource.id,
                "resourcePath": resource_path,
                "httpMethod": request.method,
                "extendedRequestId": request.request_id[:18],
                "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "path": full_path,
                "accountId": ACCOUNT_ID,
                "protocol": "HTTP/1.1",
                "stage": stage.name,
                "domainPrefix": host.split(".", 1)[0],
                "requestTimeEpoch": int(now * 1000),
                "requestId": request.request_id,
                "identity": {
                    "cognitoIdentityPoolId": None, "accountId": None, "cognitoIdentityId": None, "caller": None,
                    "sourceIp": request.source_ip, "principalOrgId": None, "accessKey": None,
                    "cognitoAuthenticationType": None, "cognitoAuthenticationProvider": None, "userArn": None,
                    "userAgent": headers.get("User-Agent") or headers.get("user-agent"), "user": None,
                },
                "domainName": host,
                "apiId": api.id,
            },
            "body": body,
            "isBase64Encoded": is_base64,
        }

    @staticmethod
    def _event_body(raw: bytes, headers: dict[str, str], api: Any) -> tuple[str | None, bool]:
        if not raw:
            return None, False
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        media = content_type.split(";", 1)[0].strip().lower()
        binary = [t.lower() for t in (api.binaryMediaTypes or [])]
        if media and (media in binary or "*/*" in binary):
            return base64.b64encode(raw).decode(), True
        try:
            return raw.decode("utf-8"), False
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode(), True

    # --- the proxy response ---

    def _proxy_response(self, result: Any, rid: str) -> GatewayResponse:
        """API Gateway's checks of a Lambda proxy response; anything malformed is a 502."""
        if not isinstance(result, dict) or not set(result) <= PROXY_RESPONSE_KEYS:
            return internal_error(rid, 502)
        status = result.get("statusCode")
        if isinstance(status, str) and status.isdigit():
            status = int(status)
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            return internal_error(rid, 502)
        body = result.get("body")
        single = result.get("headers") or {}
        multi = result.get("multiValueHeaders") or {}
        if not isinstance(single, dict) or not isinstance(multi, dict) or not (body is None or isinstance(body, str)):
            return internal_error(rid, 502)
        if result.get("isBase64Encoded"):
            try:
                payload = base64.b64decode(body or "", validate=True)
            except ValueError:
                return internal_error(rid, 502)
        else:
            payload = (body or "").encode("utf-8")
        headers: list[tuple[str, str]] = []
        seen: set[str] = set()
        for name, values in multi.items():
            if not isinstance(values, list):
                return internal_error(rid, 502)
            seen.add(str(name).lower())
            headers.extend((str(name), _header_value(v)) for v in values)
        for name, value in single.items():
            if str(name).lower() not in seen:
                headers.append((str(name), _header_value(value)))
        headers = [(k, v) for k, v in headers if k.lower() not in GATEWAY_OWNED]
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", "application/json"))
        headers.append(("x-amzn-RequestId", rid))
        headers.append(("x-amz-apigw-id", rid[:16]))
        return GatewayResponse(status, headers, payload)


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).replace("\r", " ").replace("\n", " ")


class _RegionServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """One region's listener (a thread per connection, HTTP parsed by http_listener); keeps its
    open connections so stop() can close them."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    max_body = MAX_BODY_BYTES

    def __init__(self, address: str, port: int, region: str, gateway: Gateway,
                 tls: ssl.SSLContext | None = None) -> None:
        self.region = region
        self.gateway = gateway
        self.tls = tls
        self._open: set[socket.socket] = set()
        self._open_changed = threading.Condition()
        super().__init__((address, port), ConnectionHandler)

    def respond(self, incoming: Incoming, peer: Any, answer_now: Callable[[Reply], object]) -> Reply:
        request = Request(region=self.region, method=incoming.method, target=incoming.target,
                          headers=incoming.headers, body=incoming.body, source_ip=peer[0],
                          local_port=self.server_address[1], request_id=str(uuid.uuid4()),
                          scheme="https" if self.tls is not None else "http")
        try:
            response = self.gateway.handle(request, lambda early: answer_now(_reply(early)))
        except Exception:  # a bug here must not kill the connection thread silently
            response = internal_error(request.request_id)
        return _reply(response)

    def detach(self, sock: socket.socket) -> None:
        """The connection was answered early and shut: stop() does not wait for its thread,
        which stays in a handler past the integration timeout until the handler returns."""
        with self._open_changed:
            self._open.discard(sock)
            self._open_changed.notify_all()

    def reject(self, status: int) -> Reply:
        """What API Gateway answers to a malformed request (400) or an oversized body (413)."""
        rid = str(uuid.uuid4())
        response = (_error(413, "Request Too Long", "RequestTooLarge", rid) if status == 413
                    else _error(400, "Bad request", "BadRequestException", rid))
        return response.status, response.headers, response.body

    def get_request(self) -> tuple[Any, Any]:
        """With TLS, the accepted socket is wrapped here (no I/O) and the handshake is done in the
        connection's own thread (http_listener), so a slow client never holds the accept loop."""
        sock, address = self.socket.accept()
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_changed:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        try:
            super().shutdown_request(request)
        finally:
            with self._open_changed:
                self._open.discard(request)
                self._open_changed.notify_all()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (a stopped checker, a killed run) is not worth a traceback."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Shut down every open connection (their threads then let go of them)."""
        with self._open_changed:
            for sock in list(self._open):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def wait_closed(self, deadline: float) -> bool:
        """True when every connection's thread has let go of it (by time.monotonic() deadline)."""
        with self._open_changed:
            return self._open_changed.wait_for(lambda: not self._open, timeout=max(0.0, deadline - time.monotonic()))


def _reply(response: GatewayResponse) -> Reply:
    return response.status, response.headers, response.body


def _port_taken(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (98, 48)  # EADDRINUSE (Linux, macOS)


class DataPlane:
    """One HTTP listener per region (ctx.regions[i].address), all on one port."""

    BIND_ATTEMPTS = 20  # with port 0: another process may hold the chosen port on a later address

    def __init__(self, ctx: CloudContext, runtime: LambdaRuntime, tls: Any = None) -> None:
        """`tls`: a TlsFront (gameday/localcloud/tls/front.py) to serve HTTPS with, and route
        as API Gateway does (custom domains, 403 for unknown hosts); None: plain HTTP."""
        self._ctx = ctx
        self._tls = tls
        self.gateway = Gateway(ctx, runtime, strict_hosts=tls is not None)
        self._servers: list[_RegionServer] = []
        self._threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        return self._ctx.data_plane_port

    def url(self, region: str) -> str:
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{self._ctx.region(region).address}:{self.port}"

    def start(self) -> None:
        """Binds every region's listener (OSError if the configured port is taken), then serves."""
        wanted = self._ctx.settings.data_plane_port
        if wanted:
            self._servers = self._bind_all(wanted)
        else:
            self._servers = retry(stop=stop_after_attempt(self.BIND_ATTEMPTS), retry=retry_if_exception(_port_taken),
                                  reraise=True)(self._bind_all)(0)
        self._ctx.data_plane_port = self._servers[0].server_address[1]
        for server in self._servers:
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                      name=f"dataplane-{server.region}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _bind_all(self, port: int) -> list[_RegionServer]:
        servers: list[_RegionServer] = []
        try:
            for spec in self._ctx.regions:
                tls = self._tls.context(spec.name) if self._tls is not None else None
                server = _RegionServer(spec.address, port, spec.name, self.gateway, tls)
                servers.append(server)
                port = server.server_address[1]
        except BaseException:
            for server in servers:
                server.server_close()
            raise
        return servers

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for server in self._servers:
            server.close_connections()
        deadline = time.monotonic() + 5  # one budget for every region, not 5 s each
        for server in self._servers:
            server.wait_closed(deadline)
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers, self._threads = [], []
