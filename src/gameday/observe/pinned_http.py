"""HTTP to a deployment's URLs as a real client makes it: DNS through the deployment's resolver,
the connection pinned to the resolved address, TLS verified against the deployment's trust.

Why not plain requests: requests resolves through getaddrinfo (the system resolver, its own
caching, no client subnet), and the local cloud's names (and a team's private zone) are known
only to the deployment's resolver. Here the URL's host is resolved through our `Resolver`
(the TTL cache scaled by time_scale), and the connection goes to the resolved address while
the request still names the host (`Host`, and for HTTPS the SNI and the certificate check,
against `Deployment.tls_verify`). Connections are kept alive per resolved address; once the
cached answer expires and DNS names another address, new requests go there, as a real
client's do after its DNS cache expires.

Which region served a request is read from the address it went to (the deployment's region
map, built from what DNS answers for each region): AWS says nothing else about it. A region
header, where a handler sends one, is kept as corroboration only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from gameday.errors import GamedayError, UsageError
from gameday.lazy import lazy_module
from gameday.observe.resolver import DnsResolutionError, Resolution, Resolver

if TYPE_CHECKING:
    import requests
else:
    requests = lazy_module("requests")

REGION_HEADER = "x-gameday-region"
DEFAULT_TIMEOUT = (2.0, 10.0)  # (connect, read) seconds
_ADDRESS_ATTR = "_gameday_address"


class GlobalRequestError(GamedayError):
    """The request got no HTTP response (DNS failure, refused, reset, timeout)."""

    def __init__(self, message: str, *, address: str | None, resolution: Resolution | None) -> None:
        super().__init__(message)
        self.address = address
        self.resolution = resolution


@dataclass
class GlobalResponse:
    """The HTTP response, the address that served it and the region that address belongs to."""

    response: requests.Response
    address: str
    resolution: Resolution
    address_region: str | None = None   # from the deployment's region map (what DNS answers per region)

    @property
    def status(self) -> int:
        return self.response.status_code

    @property
    def ok(self) -> bool:
        return 200 <= self.response.status_code < 300

    @property
    def region(self) -> str | None:
        """The region that served the request: the one its address belongs to (None if unmapped)."""
        return self.address_region

    @property
    def header_region(self) -> str | None:
        """What a handler's region header claims, if it sends one (corroboration, never the verdict)."""
        return self.response.headers.get(REGION_HEADER) or None

    @property
    def served_by(self) -> str:
        """The region of the address, else the address itself."""
        return self.address_region or self.address

    def json(self) -> Any:
        return self.response.json()


@functools.cache
def _pinned_address_adapter() -> type:
    """The adapter class, made on first use (requests is a heavy import, and a run that only
    collects game days never sends a request)."""
    from requests.adapters import HTTPAdapter

    class PinnedAddressAdapter(HTTPAdapter):
        """Sends each request to the address attached to it, keeping the URL's host for TLS.

        urllib3 pools are keyed by (scheme, address, port, server_hostname): one keep-alive pool
        per resolved address, so a DNS change opens new connections to the new address.
        """

        def build_connection_pool_key_attributes(self, request: Any, verify: Any, cert: Any = None) -> Any:
            host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
            address = getattr(request, _ADDRESS_ATTR, None)
            if address:
                domain = host_params["host"]
                host_params = {**host_params, "host": address}
                if host_params.get("scheme") == "https":
                    # urllib3 takes these pool arguments; requests' stubs list only the ones it sets itself
                    pinned: dict[str, Any] = {**pool_kwargs, "server_hostname": domain, "assert_hostname": domain}
                    return host_params, pinned
            return host_params, pool_kwargs

    return PinnedAddressAdapter


def http_session(verify: str | bool, *, pool_maxsize: int = 32) -> requests.Session:
    """The one way the harness makes an HTTP session: no proxy from the environment (it would
    defeat the pinned address), TLS verified as `verify` says (a CA bundle path or the system
    store: Deployment.tls_verify), every request sent to the address attached to it."""
    if verify is False:
        raise UsageError("TLS verification cannot be turned off: give the deployment's ca_bundle instead")
    session = requests.Session()
    session.trust_env = False
    session.verify = verify
    adapter = _pinned_address_adapter()(pool_connections=8, pool_maxsize=pool_maxsize, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class PinnedClient:
    """HTTP to one base URL through `resolver`; thread-safe (one instance serves every traffic thread).

    `region` is the client's region for latency routing (EDNS0 client subnet) and the cache key;
    `region_of_address` names the region an address belongs to (the deployment's region map).
    """

    def __init__(
        self,
        global_url: str,
        resolver: Resolver,
        *,
        region: str | None = None,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        pool_maxsize: int = 32,
        verify: str | bool = True,
        region_of_address: Callable[[str], str | None] | None = None,
    ) -> None:
        parts = urlsplit(global_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"url: expected http(s)://host[:port][/base], got {global_url!r}")
        self.global_url = global_url.rstrip("/")
        self.scheme = parts.scheme
        self.domain = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/")
        self.resolver = resolver
        self.region = region
        resolver.client_address_for(region)  # a client region with no known address: fail now, not per request
        self.timeout = timeout
        self.region_of_address = region_of_address or (lambda _address: None)
        self._session = http_session(verify, pool_maxsize=pool_maxsize)

    @classmethod
    def from_deployment(cls, dep: Any, *, region: str | None = None, dns_mode: str = "ttl",
                        resolver: Resolver | None = None, **kwargs: Any) -> PinnedClient:
        """To the global domain of a gameday.deployment.Deployment: global_url, dns_resolver,
        time_scale, regions, ca_bundle."""
        if dns_mode not in ("ttl", "no-cache"):
            raise UsageError(f"dns_mode: expected 'ttl' or 'no-cache', got {dns_mode!r}")
        resolver = resolver or Resolver.from_deployment(dep, cache=dns_mode == "ttl")
        return cls(dep.global_url, resolver, region=region, **_deployment_kwargs(dep, resolver, kwargs))

    @classmethod
    def for_region(cls, dep: Any, region: str, *, resolver: Resolver | None = None, **kwargs: Any) -> PinnedClient:
        """To one region's api_url (its execute-api host, resolved through the deployment's resolver,
        asked every time: a probe must see the region now, not a cached answer)."""
        resolver = resolver or Resolver.from_deployment(dep, cache=False)
        return cls(dep.region(region).api_url, resolver, **_deployment_kwargs(dep, resolver, kwargs))

    # -- requests ------------------------------------------------------------------
    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.domain}:{self.port}{self.base_path}/{path.lstrip('/')}"

    def resolve(self) -> Resolution:
        return self.resolver.resolve(self.domain, region=self.region)

    def request(self, method: str, path: str, *, json: Any = None, headers: dict[str, str] | None = None,
                timeout: float | tuple[float, float] | None = None) -> GlobalResponse:
        """One request. Raises GlobalRequestError when no HTTP response came back (any status is returned)."""
        try:
            resolution = self.resolve()
        except DnsResolutionError as exc:
            raise GlobalRequestError(str(exc), address=None, resolution=None) from exc
        prepared = requests.Request(method, self.url(path), json=json,
                                    headers={**(headers or {}), "Host": self.domain}).prepare()
        last_error: Exception | None = None
        address = resolution.addresses[0]
        for address in resolution.addresses:  # like getaddrinfo users: next address only if connecting failed
            setattr(prepared, _ADDRESS_ATTR, address)
            try:
                response = self._session.send(prepared, timeout=timeout or self.timeout, allow_redirects=False,
                                              verify=self._session.verify)
                return GlobalResponse(response, address, resolution, self.region_of_address(address))
            except requests.ConnectionError as exc:
                last_error = exc
                if not _never_connected(exc):
                    break
            except requests.RequestException as exc:
                last_error = exc
                break
        raise GlobalRequestError(_describe(last_error), address=address, resolution=resolution) from last_error

    def get(self, path: str, **kwargs: Any) -> GlobalResponse:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, *, json: Any = None, **kwargs: Any) -> GlobalResponse:
        return self.request("POST", path, json=json, **kwargs)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> PinnedClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _deployment_kwargs(dep: Any, resolver: Resolver, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The deployment's trust and region map, unless the caller gave its own."""
    from gameday.deployment import Deployment
    from gameday.observe import dns_answers

    out = dict(kwargs)
    out.setdefault("verify", getattr(dep, "tls_verify", True))
    if isinstance(dep, Deployment):  # a stand-in with no regions' names has no map to place addresses by
        out.setdefault("region_of_address",
                       lambda address: dns_answers.region_of_address(dep, address, resolver=resolver))
    return out


def _never_connected(exc: BaseException) -> bool:
    """True when the TCP connection was never made (safe to try another address, even for POST)."""
    import urllib3.exceptions as urllib3_exceptions

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (urllib3_exceptions.NewConnectionError, urllib3_exceptions.ConnectTimeoutError,
                                requests.ConnectTimeout)):
            return True
        reason = getattr(current, "reason", None)
        nested = current.args[0] if current.args and isinstance(current.args[0], BaseException) else None
        current = reason if isinstance(reason, BaseException) else nested or current.__cause__ or current.__context__
    return False


def _describe(exc: BaseException | None) -> str:
    """A short one-line cause: 'ConnectTimeout', 'ConnectionRefused', 'ReadTimeout', ..."""
    if exc is None:
        return "no response"
    text = str(exc)
    if isinstance(exc, requests.ConnectTimeout):
        return "connect timeout"
    if isinstance(exc, requests.ReadTimeout):
        return "read timeout"
    if "Connection refused" in text:
        return "connection refused"
    if "reset" in text.lower() or "RemoteDisconnected" in text or "aborted" in text.lower():
        return "connection reset"
    return f"{type(exc).__name__}: {text[:160]}"
