"""The deployment description (YAML): what the harness attaches to, validated on load.

Why strict: a game day against the wrong table attribute or a mistyped option
silently measures nothing. Every problem is a one-line UsageError that names the
field path (e.g. `regions[1].health_check_id`) and what was expected, raised
before any AWS call. Unknown keys are refused for the same reason (a typo in an
optional key would otherwise fall back to a default without a word).
"""

from __future__ import annotations

import functools
import ipaddress
import math
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from gameday.errors import UsageError
from gameday.records import FIGURES
from gameday.safety.guardrails import Guardrails, parse_guardrails
from gameday.table_consistency import CONSISTENCIES, EVENTUAL, MRSC_TABLE_VERSION, STRONG, mrsc_layout_problem

SCHEMA_VERSION = 1
TARGETS = ("local", "aws")
FAILOVER, LATENCY, FAILOVER_PAIRS = "failover", "latency", "failover_pairs"
ROUTINGS = (FAILOVER, LATENCY, FAILOVER_PAIRS)
FAILOVER_ROLES = ("PRIMARY", "SECONDARY")
# table version -> the attribute that names the region that wrote an item (AWS_FACTS.md)
REGION_ATTRIBUTE_BY_VERSION = {"2017.11.29": "aws:rep:updateregion", "2019.11.21": "written_region"}
DEFAULT_FUNCTIONS = {"put": "gameday-PutItem", "get": "gameday-GetItem", "health": "gameday-Health"}
_HOSTNAME_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
#: a Route 53 hosted zone id, bare or as the API's /hostedzone/ path
HOSTED_ZONE_ID = re.compile(r"^(/hostedzone/)?[A-Z0-9]{1,32}$")


def is_dns_name(text: str) -> bool:
    """Whether `text` is a DNS name (labels of letters, digits, '-', '_'; a trailing dot allowed)."""
    name = text.rstrip(".")
    return 0 < len(name) <= 253 and all(_HOSTNAME_LABEL.match(label) for label in name.split("."))


@dataclass(frozen=True)
class Functions:
    put: str
    get: str
    health: str


@dataclass(frozen=True)
class Region:
    name: str
    api_url: str                       # regional endpoint incl. stage, e.g. http://127.0.0.11:8080/prod
    health_check_id: str
    functions: Functions
    client_address: str | None = None  # an address "in" the region (EDNS0 client subnet for latency)
    failover_role: str | None = None   # PRIMARY | SECONDARY (failover routing only)
    api_host: str | None = None        # the regional API host name ({api_id}.execute-api.{region}.amazonaws.com)
    api_id: str | None = None          # the REST API id
    regional_domain_name: str | None = None  # the custom domain's RegionalDomainName (alias target)
    client_network: str | None = None  # a network "in" the region (EDNS0 client subnet)
    address: str | None = None         # where the region's front door listens (local cloud only)
    failover_partner: str | None = None  # the region its clients fail over to (failover_pairs routing only)

    @property
    def health_url(self) -> str:
        return self.api_url.rstrip("/") + "/health"

    @property
    def api_url_host(self) -> str:
        """The host part of api_url (an address locally, the API host name on AWS)."""
        return urlsplit(self.api_url).hostname or ""


@dataclass(frozen=True)
class Table:
    name: str
    version: str
    region_attribute: str


class Slo(Mapping[str, float]):
    """The SLO maxima a game day is judged by ({figure: max}, figures from records.FIGURES).
    A figure not set reads as None, as an attribute or with `.get`."""

    def __init__(self, values: Mapping[str, float] | None = None) -> None:
        self._values = dict(values or {})

    def __getitem__(self, name: str) -> float:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> float | None:
        if name in FIGURES:
            return self._values.get(name)
        raise AttributeError(name)

    def __repr__(self) -> str:
        return f"Slo({self._values!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self) == dict(other)

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._values.items())))


@dataclass(frozen=True)
class LeaseTable:
    """The DynamoDB table (infra/lease-table.yaml) that holds the deployment's lease, and its region."""

    table: str
    region: str


@dataclass(frozen=True)
class Deployment:
    target: str
    domain: str
    global_url: str
    hosted_zone_id: str
    routing: str
    table: Table
    regions: tuple[Region, ...]
    time_scale: float = 1.0
    dns_resolver: str = "system"
    record_ttl_s: int = 60
    aws_endpoint_url: str | None = None
    control_url: str | None = None
    ca_bundle: str | None = None       # PEM file to verify HTTPS against (None: the system store)
    slo: Slo = field(default_factory=Slo)
    lease: LeaseTable | None = None    # where the deployment's lease lives (one game day at a time)
    guardrails: Guardrails = field(default_factory=Guardrails)
    source: str = "<dict>"             # where it was loaded from (for messages)

    def region(self, name: str) -> Region:
        for region in self.regions:
            if region.name == name:
                return region
        raise UsageError(f"region: expected one of {', '.join(self.region_names)}, got {name!r}")

    @property
    def region_names(self) -> list[str]:
        return [r.name for r in self.regions]

    def others(self, name: str) -> list[Region]:
        """Every region but `name` (the survivors when `name` fails)."""
        self.region(name)
        return [r for r in self.regions if r.name != name]

    def expected_survivor(self, failed: str) -> str | None:
        """The one region the failed region's clients must land in, where the routing names it:
        the partner under failover_pairs, the other region of a failover pair; None under latency
        (any healthy region nearest the client)."""
        region = self.region(failed)
        if self.routing == FAILOVER_PAIRS:
            return region.failover_partner
        if self.routing == FAILOVER and region.failover_role == "PRIMARY":
            return next(r.name for r in self.regions if r.name != failed)
        return None

    @property
    def routes_by_client(self) -> bool:
        """Whether the answer depends on where the client is (latency records at the domain, as
        under latency routing and under failover_pairs, whose latency records alias each region's
        failover pair)."""
        return self.routing in (LATENCY, FAILOVER_PAIRS)

    @property
    def tls_verify(self) -> str | bool:
        """What every HTTPS request of the harness verifies against: the description's CA bundle,
        else the system's trust store. Never False: an unverified answer could come from anyone."""
        return self.ca_bundle or True

    @property
    def resolver_address(self) -> tuple[str, int] | None:
        """(host, port) of the configured DNS resolver; None for the system resolver."""
        if self.dns_resolver == "system":
            return None
        host, port = _split_host_port(self.dns_resolver)
        return host, port

    def public(self) -> dict[str, Any]:
        """The description as plain data, for run summaries (it holds no secrets)."""
        data = asdict(self)
        data.pop("source", None)
        data["regions"] = [asdict(r) for r in self.regions]
        return data


# -- loading ---------------------------------------------------------------------

def load_deployment(path: str | Path) -> Deployment:
    """Read and validate a deployment description; UsageError (one line) on any problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UsageError(f"deployment file {path}: not found") from None
    except IsADirectoryError:
        raise UsageError(f"deployment file {path}: expected a file, got a directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"deployment file {path}: cannot read ({type(exc).__name__}: {exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise UsageError(f"deployment file {path}: not valid YAML{where}: {problem}") from None
    return parse_deployment(data, source=str(path))


def check_writable(path: str | Path, option: str, *, folder: bool = False) -> None:
    """UsageError (one line naming `option`) unless `path` can be written, as a file (or with
    `folder`, a folder). Creates the missing folders, as writing it would. Checked before anything
    starts: a command that takes minutes to deploy must not fail at its very end."""
    target = Path(path).expanduser()
    if target.is_dir() and not folder:
        raise UsageError(f"{option}: expected a file path, got a directory: {path}")
    if folder and target.exists() and not target.is_dir():
        raise UsageError(f"{option}: expected a folder, got a file: {path}")
    parent = target if folder else target.parent
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise UsageError(f"{option}: expected a {'folder' if folder else 'file'} that can be written, "
                         f"got {str(path)!r} ({existing} is a file, not a folder)")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(f"{option}: expected a {'folder' if folder else 'file'} that can be written, "
                         f"got {str(path)!r} ({reason}: {exc.filename or parent})") from None


def parse_deployment(data: Any, source: str = "<dict>") -> Deployment:
    """Validate an already-parsed description (a mapping) into a Deployment."""
    v = _Validator(source)
    top = v.mapping(data, "", "a mapping (the deployment description)")
    v.known_keys(top, "", {
        "gameday_deployment", "target", "aws_endpoint_url", "control_url", "time_scale", "domain",
        "global_url", "dns_resolver", "hosted_zone_id", "routing", "record_ttl_s", "table", "regions", "slo",
        "lease", "guardrails", "ca_bundle",
    })
    schema = v.required(top, "gameday_deployment", "")
    if schema != SCHEMA_VERSION or isinstance(schema, bool):
        v.fail("gameday_deployment", f"{SCHEMA_VERSION}", schema)
    target = v.choice(v.required(top, "target", ""), "target", TARGETS)
    aws_endpoint_url = v.optional_url(top.get("aws_endpoint_url"), "aws_endpoint_url")
    control_url = v.optional_url(top.get("control_url"), "control_url")
    time_scale = v.number(top.get("time_scale", 1.0), "time_scale", "a number in (0, 1]")
    if not 0 < time_scale <= 1:
        v.fail("time_scale", "a number in (0, 1]", time_scale)
    if target == "aws":  # AWS runs at its own pace and at its own endpoints: anything else measures an emulator
        if time_scale != 1:
            v.fail("time_scale", "1 with target aws (AWS runs in real time)", time_scale)
        if aws_endpoint_url is not None:
            v.fail("aws_endpoint_url", "no aws_endpoint_url with target aws", aws_endpoint_url)
    domain = v.hostname(v.required(top, "domain", ""), "domain")
    global_url = v.url(v.required(top, "global_url", ""), "global_url")
    dns_resolver = v.resolver(top.get("dns_resolver", "system"), "dns_resolver")
    hosted_zone_id = v.string(v.required(top, "hosted_zone_id", ""), "hosted_zone_id")
    routing = v.choice(v.required(top, "routing", ""), "routing", ROUTINGS)
    record_ttl_s = v.integer(top.get("record_ttl_s", 60), "record_ttl_s", minimum=0)
    table = _parse_table(v, v.required(top, "table", ""))
    regions = _parse_regions(v, v.required(top, "regions", ""), routing)
    slo = _parse_slo(v, top.get("slo"))
    ca_bundle = v.optional_file(top.get("ca_bundle"), "ca_bundle")
    lease = _parse_lease(v, top.get("lease"))
    guardrails = parse_guardrails(v, top.get("guardrails"), known_regions=known_regions())
    return Deployment(
        target=target, domain=domain, global_url=global_url, hosted_zone_id=hosted_zone_id,
        routing=routing, table=table, regions=regions, time_scale=float(time_scale),
        dns_resolver=dns_resolver, record_ttl_s=record_ttl_s, aws_endpoint_url=aws_endpoint_url,
        control_url=control_url, ca_bundle=ca_bundle, slo=slo, source=source, lease=lease, guardrails=guardrails,
    )


def _optional(mapping: Mapping[str, Any], key: str, where: str, check: Any) -> Any:
    """`mapping[key]` checked by `check(value, path)`, or None when absent."""
    value = mapping.get(key)
    return None if value is None else check(value, f"{where}.{key}")


def _parse_lease(v: _Validator, raw: Any) -> LeaseTable | None:
    if raw is None:
        return None
    lease = v.mapping(raw, "lease", "a mapping of table, region")
    v.known_keys(lease, "lease", {"table", "region"})
    region = v.string(v.required(lease, "region", "lease"), "lease.region")
    if region not in known_regions():
        v.fail("lease.region", "an AWS region name like eu-west-1 (one botocore knows)", region)
    return LeaseTable(table=v.string(v.required(lease, "table", "lease"), "lease.table"), region=region)


@functools.lru_cache(maxsize=1)
def known_regions() -> frozenset[str]:
    """Every region botocore knows in any partition (its endpoint data, read once): the one check of
    a region name, so a typo is refused at load instead of becoming calls to an endpoint that is not
    there."""
    import botocore.session

    session = botocore.session.get_session()
    return frozenset(region for partition in session.get_available_partitions()
                     for region in session.get_available_regions("dynamodb", partition_name=partition))


EMBEDDED_REGIONS: tuple[str, ...] = ("eu-west-1", "us-east-1")   # the embedded local cloud's regions by default


def embedded_layout(regions: str | None, routing: str | None, *, regions_source: str = "--regions",
                    routing_source: str = "--routing") -> tuple[tuple[str, ...], str]:
    """The embedded local cloud's regions and routing from their texts (None: the default), checked.

    Routing defaults to failover for two regions and latency for more: failover records pair
    exactly two. UsageError names the source (an option or an environment variable)."""
    if regions is None:
        names = EMBEDDED_REGIONS
    else:
        names = tuple(r.strip() for r in regions.split(",") if r.strip())
        if len(names) < 2:
            raise UsageError(f"{regions_source}: expected at least 2 comma-separated regions, got {regions!r}")
        if len(set(names)) != len(names):
            raise UsageError(f"{regions_source}: duplicate region in {regions!r}")
        unknown = [r for r in names if r not in known_regions()]
        if unknown:
            raise UsageError(f"{regions_source}: unknown region {unknown[0]!r}")
    chosen = routing or ("failover" if len(names) == 2 else "latency")
    if chosen not in ROUTINGS:
        raise UsageError(f"{routing_source}: expected one of {', '.join(ROUTINGS)}, got {chosen!r}")
    if chosen == "failover" and len(names) != 2:
        raise UsageError(f"{routing_source}: failover routing pairs exactly 2 regions, {regions_source} names "
                         f"{len(names)}; use latency, or failover_pairs to name each region's partner")
    return names, chosen


def failover_pairs(text: str | None, regions: Sequence[str], *, source: str = "--pairs") -> dict[str, str]:
    """Each region's failover partner from "R:P,R:P,..." (None: each region's partner is the next
    one in `regions`, the last's the first), checked: every region once, a partner among the others.
    UsageError names the source."""
    if text is None:
        return {r: regions[(i + 1) % len(regions)] for i, r in enumerate(regions)}
    items: list[tuple[str, str]] = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        region, sep, partner = (x.strip() for x in item.partition(":"))
        if not sep or not region or not partner:
            raise UsageError(f"{source}: expected REGION:PARTNER pairs separated by commas, got {item!r}")
        items.append((region, partner))
    return check_pairs(items, regions, source=source)


def check_pairs(items: Sequence[tuple[str, str]] | Mapping[str, str], regions: Sequence[str], *,
                source: str = "pairs") -> dict[str, str]:
    """{region: partner}, checked: every region once, its partner another of `regions`."""
    pairs: dict[str, str] = {}
    for region, partner in (items.items() if isinstance(items, Mapping) else items):
        if region not in regions:
            raise UsageError(f"{source}: {region!r} is not one of the regions ({', '.join(regions)})")
        if partner not in regions:
            raise UsageError(f"{source}: partner {partner!r} of {region} is not one of the regions "
                             f"({', '.join(regions)})")
        if partner == region:
            raise UsageError(f"{source}: {region} cannot be its own partner")
        if region in pairs:
            raise UsageError(f"{source}: {region} is paired twice")
        pairs[region] = partner
    missing = [r for r in regions if r not in pairs]
    if missing:
        raise UsageError(f"{source}: no partner for {', '.join(missing)} (every region names one)")
    return pairs


def consistency_layout(consistency: str | None, witness: str | None, regions: Sequence[str],
                       table_version: str | None = None, *, consistency_source: str = "--consistency",
                       witness_source: str = "--witness", regions_source: str = "--regions",
                       table_version_source: str = "--table-version") -> tuple[str, str | None, str | None]:
    """The global table's consistency (any case; None: EVENTUAL), witness and table version, checked
    against what AWS accepts, so a layout AWS would refuse fails before anything starts.

    Returns (EVENTUAL | STRONG, witness, table version); the version is the one given, or 2019.11.21
    for STRONG when none was (MRSC exists only there), else None. UsageError names the source."""
    chosen = EVENTUAL if consistency is None else consistency.upper()
    if chosen not in CONSISTENCIES:
        raise UsageError(f"{consistency_source}: expected one of {', '.join(c.lower() for c in CONSISTENCIES)}, "
                         f"got {consistency!r}")
    if witness is not None:
        if chosen != STRONG:
            raise UsageError(f"{witness_source}: a witness is only for {consistency_source} strong")
        if witness not in known_regions():
            raise UsageError(f"{witness_source}: unknown region {witness!r}")
        if witness in regions:
            raise UsageError(f"{witness_source}: {witness} is one of {regions_source}; the witness is a third "
                             "region, holding no replica")
    if chosen != STRONG:
        return chosen, witness, table_version
    if table_version is not None and table_version != MRSC_TABLE_VERSION:
        raise UsageError(f"{consistency_source}: strong consistency needs a {MRSC_TABLE_VERSION} table, "
                         f"{table_version_source} is {table_version}")
    problem = mrsc_layout_problem(regions, witness)
    if problem is not None:
        given = f"{regions_source} {','.join(regions)}" + (f", {witness_source} {witness}" if witness else "")
        raise UsageError(f"{consistency_source}: {problem} ({given})")
    return chosen, witness, MRSC_TABLE_VERSION


def _parse_table(v: _Validator, raw: Any) -> Table:
    table = v.mapping(raw, "table", "a mapping {name, version, region_attribute}")
    v.known_keys(table, "table", {"name", "version", "region_attribute"})
    name = v.string(v.required(table, "name", "table"), "table.name")
    version = v.required(table, "version", "table")
    if not isinstance(version, str):  # YAML may read an unquoted 2019.11.21 as a string, but guard floats etc.
        v.fail("table.version", "one of " + ", ".join(REGION_ATTRIBUTE_BY_VERSION) + " (quoted)", version)
    version = v.choice(version, "table.version", tuple(REGION_ATTRIBUTE_BY_VERSION))
    attribute = table.get("region_attribute", REGION_ATTRIBUTE_BY_VERSION[version])
    attribute = v.string(attribute, "table.region_attribute")
    if version == "2019.11.21" and attribute.startswith("aws:rep:"):
        v.fail("table.region_attribute",
               "an attribute the writing handler stamps (2019.11.21 tables carry no aws:rep:* attributes)",
               attribute)
    return Table(name=name, version=version, region_attribute=attribute)


def _parse_regions(v: _Validator, raw: Any, routing: str) -> tuple[Region, ...]:
    if not isinstance(raw, list):
        v.fail("regions", "a list of regions", raw)
    if len(raw) < 2:
        v.fail("regions", "at least 2 regions", len(raw))
    if routing == "failover" and len(raw) != 2:
        raise UsageError(f"{v.source}: regions: failover routing takes exactly 2 regions; use latency "
                         f"(got {len(raw)})")
    regions: list[Region] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        where = f"regions[{i}]"
        r = v.mapping(item, where, "a mapping {name, api_url, health_check_id, functions, ...}")
        v.known_keys(r, where, {"name", "api_url", "client_address", "functions", "health_check_id",
                                "failover_role", "api_host", "api_id", "regional_domain_name",
                                "client_network", "address", "failover_partner"})
        name = v.string(v.required(r, "name", where), f"{where}.name")
        if name not in known_regions():
            v.fail(f"{where}.name", "an AWS region name like eu-west-1 (one botocore knows)", name)
        if name in seen:
            v.fail(f"{where}.name", "a region name not used before (names must be unique)", name)
        seen.add(name)
        api_url = v.url(v.required(r, "api_url", where), f"{where}.api_url")
        health_check_id = v.string(v.required(r, "health_check_id", where), f"{where}.health_check_id")
        client_address = _optional(r, "client_address", where, v.ip_address)
        api_host = _optional(r, "api_host", where, v.hostname)
        api_id = _optional(r, "api_id", where, v.string)
        regional_domain_name = _optional(r, "regional_domain_name", where, v.hostname)
        client_network = _optional(r, "client_network", where, v.network)
        address = _optional(r, "address", where, v.ip_address)
        functions = _parse_functions(v, r.get("functions", DEFAULT_FUNCTIONS), f"{where}.functions")
        role = r.get("failover_role")
        if routing == "failover":
            role = v.choice(v.required(r, "failover_role", where), f"{where}.failover_role", FAILOVER_ROLES)
        elif role is not None:
            v.fail(f"{where}.failover_role", f"no failover_role with routing {routing}", role)
        partner = r.get("failover_partner")
        if routing == FAILOVER_PAIRS:
            partner = v.string(v.required(r, "failover_partner", where), f"{where}.failover_partner")
        elif partner is not None:
            v.fail(f"{where}.failover_partner", f"no failover_partner with routing {routing}", partner)
        regions.append(Region(name=name, api_url=api_url, health_check_id=health_check_id,
                              functions=functions, client_address=client_address, failover_role=role,
                              api_host=api_host, api_id=api_id, regional_domain_name=regional_domain_name,
                              client_network=client_network, address=address, failover_partner=partner))
    if routing == FAILOVER_PAIRS:
        names = [r.name for r in regions]
        for i, region in enumerate(regions):
            if region.failover_partner not in names or region.failover_partner == region.name:
                v.fail(f"regions[{i}].failover_partner", "another region of this deployment",
                       region.failover_partner)
    if routing == "failover":
        roles = sorted(r.failover_role or "" for r in regions)
        if roles != sorted(FAILOVER_ROLES):
            v.fail("regions[1].failover_role", "one PRIMARY and one SECONDARY region",
                   f"{regions[0].failover_role} and {regions[1].failover_role}")
    return tuple(regions)


def _parse_functions(v: _Validator, raw: Any, where: str) -> Functions:
    f = v.mapping(raw, where, "a mapping {put, get, health}")
    v.known_keys(f, where, set(DEFAULT_FUNCTIONS))
    names = {key: v.string(v.required(f, key, where), f"{where}.{key}") for key in DEFAULT_FUNCTIONS}
    return Functions(**names)


def _parse_slo(v: _Validator, raw: Any) -> Slo:
    if raw is None:
        return Slo()
    slo = v.mapping(raw, "slo", "a mapping of " + ", ".join(FIGURES))
    v.known_keys(slo, "slo", set(FIGURES))
    values: dict[str, float] = {}
    for key in FIGURES:
        if slo.get(key) is None:
            continue
        number = v.number(slo[key], f"slo.{key}", "a number >= 0")
        if number < 0:
            v.fail(f"slo.{key}", "a number >= 0", number)
        values[key] = float(number)
    return Slo(values)


def _split_host_port(text: str) -> tuple[str, int]:
    if text.startswith("["):                      # [::1]:53
        host, _, rest = text[1:].partition("]")
        if not rest.startswith(":"):
            raise ValueError(text)
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError(text)
    port = int(port_text)
    if not host or not 0 < port < 65536:
        raise ValueError(text)
    return host, port


class _Validator:
    """Small typed checks that raise one-line UsageErrors naming the field path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, expected: str, got: Any) -> None:
        if isinstance(got, str):
            shown = repr(got if len(got) <= 80 else got[:77] + "...")
        else:
            text = repr(got).replace("\n", " ")
            shown = f"{type(got).__name__} {text if len(text) <= 80 else text[:77] + '...'}"
        raise UsageError(f"{self.source}: {path or '(top level)'}: expected {expected}, got {shown}")

    def missing(self, path: str, what: str = "") -> None:
        raise UsageError(f"{self.source}: {path}: required key is missing{what}")

    def required(self, mapping: Mapping[str, Any], key: str, parent: str) -> Any:
        path = f"{parent}.{key}" if parent else key
        if key not in mapping or mapping[key] is None:
            self.missing(path)
        return mapping[key]

    def mapping(self, raw: Any, path: str, expected: str) -> dict[str, Any]:
        if not isinstance(raw, dict):
            self.fail(path, expected, raw)
        for key in raw:
            if not isinstance(key, str):
                self.fail(f"{path}.{key}" if path else str(key), "string keys", key)
        return raw

    def known_keys(self, mapping: Mapping[str, Any], path: str, allowed: set[str]) -> None:
        for key in mapping:
            if key not in allowed:
                where = f"{path}.{key}" if path else key
                raise UsageError(f"{self.source}: {where}: unknown key; expected one of "
                                 + ", ".join(sorted(allowed)))

    def string(self, raw: Any, path: str) -> str:
        if not isinstance(raw, str) or not raw.strip():
            self.fail(path, "a non-empty string", raw)
        return raw.strip()

    def choice(self, raw: Any, path: str, choices: tuple[str, ...]) -> str:
        if raw not in choices or not isinstance(raw, str):
            self.fail(path, "one of " + ", ".join(choices), raw)
        return raw

    def number(self, raw: Any, path: str, expected: str) -> float:
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            self.fail(path, expected, raw)
        if not math.isfinite(raw):  # NaN and infinities
            self.fail(path, expected, raw)
        return raw

    def integer(self, raw: Any, path: str, minimum: int) -> int:
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < minimum:
            self.fail(path, f"an integer >= {minimum}", raw)
        return raw

    def url(self, raw: Any, path: str) -> str:
        text = self.string(raw, path)
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018  (raises ValueError on a bad port)
        except ValueError:
            self.fail(path, "an http(s) URL like https://host[:port]/path", text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.fail(path, "an http(s) URL like https://host[:port]/path", text)
        return text

    def optional_url(self, raw: Any, path: str) -> str | None:
        return None if raw is None else self.url(raw, path)

    def hostname(self, raw: Any, path: str) -> str:
        text = self.string(raw, path).rstrip(".")
        if not is_dns_name(text):
            self.fail(path, "a DNS name like api.example.com", raw)
        return text

    def ip_address(self, raw: Any, path: str) -> str:
        text = self.string(raw, path)
        try:
            ipaddress.ip_address(text)
        except ValueError:
            self.fail(path, "an IP address like 127.0.0.11", text)
        return text

    def network(self, raw: Any, path: str) -> str:
        text = self.string(raw, path)
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            self.fail(path, "an IP network like 127.19.142.0/24", text)
        return text

    def optional_file(self, raw: Any, path: str) -> str | None:
        """A readable file, named relative to the description's own directory when not absolute."""
        if raw is None:
            return None
        text = self.string(raw, path)
        file = Path(text).expanduser()
        if not file.is_absolute() and self.source not in ("<dict>", ""):
            file = Path(self.source).parent / file
        try:
            with file.open("rb") as handle:
                handle.read(1)
        except IsADirectoryError:
            self.fail(path, "a readable file (a PEM CA bundle), not a directory", text)
        except OSError as exc:
            self.fail(path, f"a readable file (a PEM CA bundle; {exc.strerror or type(exc).__name__})", text)
        return str(file)

    def resolver(self, raw: Any, path: str) -> str:
        text = self.string(raw, path)
        if text == "system":
            return text
        try:
            host, _port = _split_host_port(text)
        except ValueError:
            self.fail(path, '"system" or host:port (e.g. 127.0.0.1:53)', text)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not all(_HOSTNAME_LABEL.match(label) for label in host.rstrip(".").split(".")):
                self.fail(path, '"system" or host:port (e.g. 127.0.0.1:53)', text)
        return text
