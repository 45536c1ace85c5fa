"""What every component of the local cloud shares: settings, clock, ground truth,
region addresses, the control endpoint's routes and host-name resolution.

Components take a CloudContext, and have start() and stop(); serve.py wires them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gameday.localcloud.process.timescale import TimeScale
from gameday.localcloud.truth import GroundTruth

ACCOUNT_ID = "123456789012"  # moto's default account
DEFAULT_DOMAIN = "api.gameday.test"
DEFAULT_ZONE = "gameday.test"
# The eight Route 53 health-checker regions (the Regions a health check may name).
CHECKER_REGIONS = (
    "us-east-1", "us-west-1", "us-west-2", "eu-west-1",
    "ap-southeast-1", "ap-southeast-2", "ap-northeast-1", "sa-east-1",
)
TABLE_VERSIONS = ("2017.11.29", "2019.11.21")
ROUTINGS = ("failover", "latency", "failover_pairs")
HEALTH_DEPTHS = ("deep", "shallow")


@dataclass
class CloudSettings:
    regions: list[str] = field(default_factory=lambda: ["eu-west-1", "us-east-1"])
    time_scale: float = 0.01
    table_version: str = "2017.11.29"
    # The global table's consistency: EVENTUAL, or STRONG (MRSC: 3 regions, or 2 and `witness`).
    consistency: str = "EVENTUAL"
    witness: str | None = None
    mrsc_commit_s: float = 0.2          # AWS seconds an MRSC write is in flight (its cross-region commit)
    routing: str = "failover"
    pairs: dict[str, str] | None = None  # failover_pairs: {region: partner} (None: the next region's)
    health_depth: str = "deep"         # the reference Health: deep (writes and reads back) or shallow
    domain: str = DEFAULT_DOMAIN
    zone: str = DEFAULT_ZONE
    table_name: str = "MyGlobalTable"
    host: str = "127.0.0.1"            # AWS endpoint, DNS server and control endpoint bind here
    aws_port: int = 0                   # 0: a free port
    dns_port: int = 0
    data_plane_port: int = 0            # one port, the same on every region's address
    address_prefix: str | None = None   # e.g. "127.0.0." -> regions on .11, .12, ...; None: a random 127.x.y.
    replication_delay_s: float = 0.5    # AWS seconds ("typically within a second")
    lambda_update_s: float = 2.0        # AWS seconds a function's configuration change stays InProgress
    checkers_per_region: int = 2        # x 8 checker regions = 16 checkers, as AWS
    request_interval_s: int = 10        # health check RequestInterval (10 fast or 30)
    failure_threshold: int = 3
    record_ttl_s: int = 60
    record_type: str | None = None      # "alias" | "cname" (None: alias with tls, cname without)
    templates_dir: str | None = None    # None: the reference templates in gameday/infra/
    integration_timeout_floor_s: float = 5.0  # API Gateway's 29 s, scaled, never below this
    handler_transport: str = "in-process"  # handlers' boto3 -> AWS endpoint: "in-process" app call or "http"
    # The deployment shape real teams use (the default): HTTPS data plane
    # with certificates from a local CA, ACM certificates, API Gateway regional custom domains with
    # base path mappings, alias A records, health checks over HTTPS with SNI, a client network per
    # region, and 403 for a Host with no custom domain or API. False: the HTTP/CNAME shape.
    tls: bool = True
    work_dir: str | None = None         # where the CA and certificates are kept (None: a temporary folder)


@dataclass(frozen=True)
class RegionSpec:
    name: str
    address: str  # the loopback address the region's data plane listens on
    # A network "located" in this region (EDNS0 client subnets inside it are this region's
    # clients), e.g. "127.40.7.0/24"; None: only the data-plane address is located here.
    client_network: str | None = None


ControlHandler = Callable[[dict[str, str], Any], tuple[int, Any]]


class ControlRoutes:
    """Routes of the control endpoint (/_gameday/...) served beside the AWS API."""

    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], ControlHandler] = {}

    def add(self, method: str, path: str, handler: ControlHandler) -> None:
        """handler(query, json_body) -> (status, json-serialisable body)."""
        self._routes[(method.upper(), path)] = handler

    def find(self, method: str, path: str) -> ControlHandler | None:
        return self._routes.get((method.upper(), path))

    def paths(self) -> list[str]:
        return sorted(f"{m} {p}" for m, p in self._routes)


class NameRegistry:
    """Host names the local cloud answers besides the hosted zone (e.g. API hosts)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: dict[str, str] = {}
        self._suffixes: dict[str, str] = {}

    def add(self, name: str, address: str) -> None:
        with self._lock:
            self._names[name.rstrip(".").lower()] = address

    def add_suffix(self, suffix: str, address: str) -> None:
        """Every name ending in `suffix` (e.g. ".execute-api.eu-west-1.amazonaws.com")."""
        with self._lock:
            self._suffixes[suffix.rstrip(".").lower()] = address

    def lookup(self, name: str) -> str | None:
        key = name.rstrip(".").lower()
        with self._lock:
            if key in self._names:
                return self._names[key]
            for suffix, address in self._suffixes.items():
                if key.endswith(suffix):
                    return address
        return None

@dataclass
class CloudContext:
    settings: CloudSettings
    regions: list[RegionSpec]
    truth: GroundTruth = field(default_factory=GroundTruth)
    control: ControlRoutes = field(default_factory=ControlRoutes)
    names: NameRegistry = field(default_factory=NameRegistry)
    aws_endpoint_url: str = ""   # set once the AWS endpoint is listening
    dns_address: tuple[str, int] = ("127.0.0.1", 0)
    data_plane_port: int = 0

    @property
    def scale(self) -> TimeScale:
        return TimeScale(self.settings.time_scale)

    def region(self, name: str) -> RegionSpec:
        for spec in self.regions:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def region_of_address(self, address: str) -> str | None:
        for spec in self.regions:
            if spec.address == address:
                return spec.name
        return None
