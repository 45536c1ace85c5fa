"""`gameday discover --domain D`: the deployment description, read from what is deployed.

Why: attaching to an existing backend should not mean writing YAML by hand, where a swapped
health-check id or a stale function name silently measures the wrong thing. Discover follows the
chain AWS itself follows for a request to D, and refuses to guess:

  Route 53 records for D (failover or latency; CNAME to an execute-api host, or alias A records
  to a regional custom domain) -> each record's health check (the execute-api host, port and
  /{stage}/health it probes) -> the custom domain's base path mappings, when there is a custom
  domain -> the REST API's stage and the resources POST /item, GET /item/{itemId}, GET /health
  -> the Lambda functions their integrations invoke -> the table named in the functions'
  environment (`tableName`) -> its version from DescribeTable (GlobalTableVersion; absent on
  2017.11.29 replicas).

Everything that cannot be resolved, or is found twice, is named; then it exits 2 and writes
nothing. What is not an AWS resource (a local cloud's DNS resolver, time scale, CA bundle and
client addresses) comes, with `--endpoint-url`, from the local cloud's control route; on AWS
those are the defaults (the system resolver and trust store, time scale 1).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gameday.errors import UsageError

if TYPE_CHECKING:
    from gameday.observe import zone_records

ROUTE53_REGION = "us-east-1"
EXECUTE_API = re.compile(r"^(?P<prefix>[^.]+)\.execute-api\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com\.?$",
                         re.IGNORECASE)
INTEGRATION_FUNCTION = re.compile(r"functions/(?P<arn>arn:[^/]+:lambda:[^/]+:function:[^/]+)/invocations")
ROUTES = {"put": ("POST", "/item"), "get": ("GET", "/item/{itemId}"), "health": ("GET", "/health")}
LEGACY, CURRENT = "2017.11.29", "2019.11.21"
REGION_ATTRIBUTE = {LEGACY: "aws:rep:updateregion", CURRENT: "written_region"}
#: what a local cloud's own description says about its environment (no AWS API knows these)
LOCAL_TOP_KEYS = ("time_scale", "dns_resolver", "ca_bundle", "control_url", "lease")
LOCAL_REGION_KEYS = ("client_address", "client_network", "address")


class DiscoveryFailed(UsageError):
    """Some link of the chain is missing or ambiguous; the message names each."""


@dataclass
class Found:
    """What discover saw, and what it could not resolve (each problem one line)."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def saw(self, text: str) -> None:
        self.lines.append(text)

    def problem(self, text: str) -> None:
        self.problems.append(text)


class _Aws:
    """One boto3 Session serving every region (the clients of this command)."""

    def __init__(self, endpoint_url: str | None) -> None:
        import boto3

        from gameday.aws import DUMMY_CREDENTIALS, _configured_credentials_exist

        credentials = dict(DUMMY_CREDENTIALS) if endpoint_url and not _configured_credentials_exist() else {}
        self.session = boto3.Session(**credentials)
        self.endpoint_url = endpoint_url
        self._clients: dict[tuple[str, str], Any] = {}

    def client(self, service: str, region: str = ROUTE53_REGION) -> Any:
        key = (service, region)
        if key not in self._clients:
            self._clients[key] = self.session.client(service, region_name=region, endpoint_url=self.endpoint_url)
        return self._clients[key]


def _zone(aws: _Aws, domain: str, zone_id: str | None, found: Found) -> str | None:
    r53 = aws.client("route53")
    if zone_id:
        return zone_id.split("/")[-1]
    zones = [z for page in r53.get_paginator("list_hosted_zones").paginate() for z in page["HostedZones"]
             if not z.get("Config", {}).get("PrivateZone")]
    name = domain.rstrip(".").lower() + "."
    matching = [z for z in zones if name == z["Name"].lower() or name.endswith("." + z["Name"].lower())]
    if not matching:
        found.problem(f"hosted zone: no public zone contains {domain} (give --hosted-zone-id)")
        return None
    longest = max(len(z["Name"]) for z in matching)
    best = [z for z in matching if len(z["Name"]) == longest]
    if len(best) > 1:
        found.problem(f"hosted zone: found twice for {domain}: {', '.join(z['Id'].split('/')[-1] for z in best)} "
                      f"(give --hosted-zone-id)")
        return None
    return str(best[0]["Id"].split("/")[-1])


def _target_of(record: dict[str, Any]) -> str:
    from gameday.observe.zone_records import target_of

    return target_of(record).rstrip(".")


def _pair_region(record: dict[str, Any], pair: zone_records.FailoverPair | None, label: str,
                 found: Found) -> tuple[str, dict[str, Any], str] | None:
    """(region, its PRIMARY record, its partner) of a latency record aliasing a failover pair."""
    if pair is None:
        found.problem(f"{label}: not an alias to a failover pair in the zone, as every record is under "
                      f"failover between pairs")
        return None
    problem = pair.problem()
    if problem is not None or pair.primary is None or pair.secondary is None:
        found.problem(f"{label}: aliases {problem or pair.name}")
        return None
    region, partner = _region_of(pair.primary), _region_of(pair.secondary)
    if region is None or region != record.get("Region"):
        found.problem(f"{label}: answers clients of {record.get('Region')}, but its pair {pair.name.rstrip('.')} "
                      f"sends them first to {region or _target_of(pair.primary)!r}")
        return None
    if partner is None or partner == region:
        found.problem(f"{label}: its pair {pair.name.rstrip('.')} fails over to "
                      f"{partner or _target_of(pair.secondary)!r}, not another region")
        return None
    return region, pair.primary, partner


def _region_of(record: dict[str, Any]) -> str | None:
    match = EXECUTE_API.match(_target_of(record))
    if match:
        return match.group("region").lower()
    return record.get("Region")


def discover(domain: str, *, hosted_zone_id: str | None = None, endpoint_url: str | None = None,
             aws: _Aws | None = None) -> tuple[dict[str, Any] | None, Found]:
    """(the description, or None when something is missing or twice; what was seen and the problems)."""
    from gameday.observe import zone_records  # at use: the command line starts without observe's imports

    aws = aws or _Aws(endpoint_url)
    found = Found()
    zone = _zone(aws, domain, hosted_zone_id, found)
    if zone is None:
        return None, found
    found.saw(f"hosted zone {zone}")
    r53 = aws.client("route53")
    records = zone_records.records_at(r53, zone, domain)
    if not records:
        found.problem(f"records: none for {domain} in zone {zone}")
        return None, found
    pairs = {id(r): zone_records.failover_pair(r53, zone, name) for r in records
             if (name := zone_records.in_zone_alias(r, zone)) is not None}
    routing = "failover_pairs" if pairs else "failover" if any(r.get("Failover") for r in records) \
        else "latency" if any(r.get("Region") for r in records) else None
    if routing is None:
        found.problem(f"records: {domain} has no failover or latency records (found {len(records)} simple record(s))")
        return None, found
    regions: list[dict[str, Any]] = []
    ttl: int | None = None
    seen_regions: dict[str, str] = {}
    tables: dict[str, set[str]] = {}
    schemes: set[tuple[str, int]] = set()
    secondaries: dict[str, tuple[str, str, str | None]] = {}   # region -> (pair label, partner, its check)
    for listed in records:
        ident = listed.get("SetIdentifier", "?")
        label = f"record {domain} ({listed['Type']}, {ident})"
        pair = pairs.get(id(listed))
        record, region, partner = listed, _region_of(listed), None
        if routing == "failover_pairs":
            resolved = _pair_region(listed, pair, label, found)
            if resolved is None or pair is None:
                continue
            region, record, partner = resolved
            label = f"record {pair.name.rstrip('.')} ({record['Type']}, {record.get('SetIdentifier', '?')})"
        if region is None:
            found.problem(f"{label}: cannot tell its region from its target {_target_of(record)!r}")
            continue
        if region in seen_regions:
            found.problem(f"{label}: region {region} found twice (also record {seen_regions[region]})")
            continue
        seen_regions[region] = ident
        if record.get("TTL") is not None:
            ttl = int(record["TTL"])
        hc_id = record.get("HealthCheckId")
        if not hc_id:
            found.problem(f"{label}: no health check (Route 53 would never fail it over)")
            continue
        entry = _region(aws, domain, region, record, hc_id, label, found, tables, schemes)
        if entry is not None:
            if routing == "failover":
                entry["failover_role"] = record.get("Failover")
            if pair is not None and pair.secondary is not None and partner is not None:
                entry["failover_partner"] = partner
                secondaries[region] = (f"record {pair.name.rstrip('.')} (SECONDARY)", partner,
                                       pair.secondary.get("HealthCheckId"))
            regions.append(entry)
    checks = {str(e["name"]): e["health_check_id"] for e in regions}
    for region, (label, partner, check) in secondaries.items():
        if partner not in checks:
            found.problem(f"{label}: {region}'s clients fail over to {partner}, which no latency record of "
                          f"{domain} serves")
        elif check != checks[partner]:
            found.problem(f"{label}: health check {check}, not {partner}'s ({checks[partner]}): Route 53 would "
                          f"send {region}'s clients to {partner} on another check's word")
    table = _table(aws, tables, [r["name"] for r in regions], found)
    if found.problems or table is None:
        return None, found
    scheme, port = sorted(schemes)[0]
    if len(schemes) > 1:
        found.problem(f"health checks: regions probe differently ({sorted(schemes)}); expected one scheme and port")
        return None, found
    default_port = 443 if scheme == "https" else 80
    suffix = "" if port == default_port else f":{port}"
    for entry in regions:
        entry["api_url"] = f"{scheme}://{entry['api_host']}{suffix}/{entry.pop('_stage')}"
    description: dict[str, Any] = {
        "gameday_deployment": 1, "target": "local" if endpoint_url else "aws",
        **({"aws_endpoint_url": endpoint_url} if endpoint_url else {}),
        "domain": domain.rstrip("."), "global_url": f"{scheme}://{domain.rstrip('.')}{suffix}",
        "hosted_zone_id": zone, "routing": routing, "record_ttl_s": ttl if ttl is not None else 60,
        "table": table, "regions": regions,
    }
    found.saw(f"routing {routing}, {len(regions)} regions, table {table['name']} ({table['version']})")
    return description, found


def _region(aws: _Aws, domain: str, region: str, record: dict[str, Any], hc_id: str, label: str, found: Found,
            tables: dict[str, set[str]], schemes: set[tuple[str, int]]) -> dict[str, Any] | None:
    config = aws.client("route53").get_health_check(HealthCheckId=hc_id)["HealthCheck"]["HealthCheckConfig"]
    host = str(config.get("FullyQualifiedDomainName") or "")
    match = EXECUTE_API.match(host)
    path = str(config.get("ResourcePath") or "")
    if not match or match.group("region").lower() != region:
        found.problem(f"{label}: health check {hc_id} probes {host or config.get('IPAddress')!r}, not an execute-api "
                      f"host in {region}")
        return None
    if not path.endswith("/health") or path.count("/") != 2:
        found.problem(f"{label}: health check {hc_id} probes {path!r}, expected /{{stage}}/health")
        return None
    api_id, stage = match.group("prefix"), path.split("/")[1]
    schemes.add(("https" if config.get("Type", "").startswith("HTTPS") else "http",
                 int(config.get("Port") or (443 if config.get("Type", "").startswith("HTTPS") else 80))))
    found.saw(f"{region}: record {record.get('SetIdentifier')} -> health check {hc_id} ({config.get('Type')} "
              f"{host}{path})")
    apigw = aws.client("apigateway", region)
    regional_domain_name = None
    if record.get("AliasTarget"):
        regional_domain_name = _target_of(record).lower()
        mapped = _mapped_api(apigw, domain, region, _target_of(record), label, found)
        if mapped is None:
            return None
        if mapped != (api_id, stage):
            found.problem(f"{label}: two APIs behind {domain} in {region}: the base path mapping serves "
                          f"{mapped[0]}/{mapped[1]}, the health check probes {api_id}/{stage}")
            return None
    elif str(_target_of(record)).lower() != host.lower():
        found.problem(f"{label}: two APIs behind {domain} in {region}: the record points at {_target_of(record)}, "
                      f"the health check probes {host}")
        return None
    try:
        apigw.get_stage(restApiId=api_id, stageName=stage)
    except Exception as exc:  # noqa: BLE001  (named below; any AWS error is "not resolved")
        found.problem(f"{region}: REST API {api_id} stage {stage}: not found ({type(exc).__name__})")
        return None
    functions = _functions(aws, apigw, region, api_id, found, tables)
    if functions is None:
        return None
    found.saw(f"{region}: API {api_id}/{stage}: " + ", ".join(f"{' '.join(ROUTES[k])} -> {v}" for k, v in functions.items()))
    entry: dict[str, Any] = {"name": region, "_stage": stage, "api_host": host.lower(), "api_id": api_id,
                             "functions": functions, "health_check_id": hc_id}
    if regional_domain_name:
        entry["regional_domain_name"] = regional_domain_name
    return entry


def _mapped_api(apigw: Any, domain: str, region: str, target: str, label: str,
                found: Found) -> tuple[str, str] | None:
    try:
        name = apigw.get_domain_name(domainName=domain.rstrip("."))
    except Exception as exc:  # noqa: BLE001
        found.problem(f"{label}: no API Gateway custom domain {domain} in {region} ({type(exc).__name__})")
        return None
    if str(name.get("regionalDomainName", "")).lower() != target.lower():
        found.problem(f"{label}: the alias points at {target}, but {domain}'s regional domain name in {region} is "
                      f"{name.get('regionalDomainName')}")
        return None
    mappings = apigw.get_base_path_mappings(domainName=domain.rstrip(".")).get("items", [])
    apis = {(m["restApiId"], m.get("stage", "")) for m in mappings}
    if not mappings:
        found.problem(f"{label}: custom domain {domain} in {region} has no base path mapping")
        return None
    if len(apis) > 1:
        shown = ", ".join(f"{m.get('basePath', '(none)')} -> {m['restApiId']}/{m.get('stage', '')}" for m in mappings)
        found.problem(f"{label}: two APIs behind {domain} in {region}: {shown}")
        return None
    (api_id, stage), = apis
    found.saw(f"{region}: custom domain {domain} -> {api_id}/{stage}")
    return str(api_id), str(stage)


def _functions(aws: _Aws, apigw: Any, region: str, api_id: str, found: Found,
               tables: dict[str, set[str]]) -> dict[str, str] | None:
    resources = [r for page in apigw.get_paginator("get_resources").paginate(restApiId=api_id) for r in page["items"]]
    lam = aws.client("lambda", region)
    out: dict[str, str] = {}
    ok = True
    for role, (method, path) in ROUTES.items():
        matching = [r for r in resources if r.get("path") == path]
        if len(matching) != 1:
            found.problem(f"{region}: API {api_id}: {method} {path}: " +
                          ("no such resource" if not matching else "found twice"))
            ok = False
            continue
        try:
            integration = apigw.get_integration(restApiId=api_id, resourceId=matching[0]["id"], httpMethod=method)
        except Exception as exc:  # noqa: BLE001
            found.problem(f"{region}: API {api_id}: {method} {path}: no integration ({type(exc).__name__})")
            ok = False
            continue
        arn = INTEGRATION_FUNCTION.search(str(integration.get("uri", "")))
        if not arn:
            found.problem(f"{region}: API {api_id}: {method} {path}: integration {integration.get('uri')!r} "
                          f"invokes no Lambda function")
            ok = False
            continue
        if arn.group("arn").split(":")[3] != region:
            found.problem(f"{region}: API {api_id}: {method} {path} invokes {arn.group('arn')}, in another region")
            ok = False
            continue
        try:
            config = lam.get_function_configuration(FunctionName=arn.group("arn"))
        except Exception as exc:  # noqa: BLE001
            found.problem(f"{region}: {method} {path}: function {arn.group('arn')} not found ({type(exc).__name__})")
            ok = False
            continue
        out[role] = str(config["FunctionName"])
        table = ((config.get("Environment") or {}).get("Variables") or {}).get("tableName")
        if table and role in ("put", "get"):
            tables.setdefault(str(table), set()).add(f"{region} {config['FunctionName']}")
    return out if ok else None


def _table(aws: _Aws, tables: dict[str, set[str]], regions: list[str], found: Found) -> dict[str, Any] | None:
    if not tables:
        if regions:
            found.problem("table: no PutItem/GetItem function names one in its environment (tableName)")
        return None
    if len(tables) > 1:
        found.problem("table: found twice: " + "; ".join(f"{t} ({', '.join(sorted(w))})" for t, w in tables.items()))
        return None
    (name,) = tables
    versions: dict[str, str] = {}
    for region in regions:
        ddb = aws.client("dynamodb", region)
        try:
            described = ddb.describe_table(TableName=name)["Table"]
        except Exception as exc:  # noqa: BLE001
            found.problem(f"table {name}: not found in {region} ({type(exc).__name__})")
            continue
        versions[region] = str(described.get("GlobalTableVersion") or LEGACY)
    if len(set(versions.values())) > 1:
        found.problem(f"table {name}: versions differ between regions: {versions}")
        return None
    if not versions:
        return None
    version = next(iter(versions.values()))
    found.saw(f"table {name}: {version} in {', '.join(versions)}")
    return {"name": name, "version": version, "region_attribute": REGION_ATTRIBUTE[version]}


def _local_environment(endpoint_url: str, description: dict[str, Any]) -> None:
    """The local cloud's own settings that no AWS API knows (resolver, time scale, CA, client addresses)."""
    url = endpoint_url.rstrip("/") + "/_gameday/description"
    try:
        import urllib.request  # http.client and ssl: only for a command that asks a local cloud

        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310  (the given endpoint, loopback)
            local = json.loads(response.read())
    except (OSError, ValueError):
        return  # another emulator: its defaults stand
    for key in LOCAL_TOP_KEYS:
        if local.get(key) is not None:
            description[key] = local[key]
    by_name = {r.get("name"): r for r in local.get("regions", [])}
    for region in description["regions"]:
        for key in LOCAL_REGION_KEYS:
            value = by_name.get(region["name"], {}).get(key)
            if value is not None:
                region[key] = value


def check_arguments(args: argparse.Namespace) -> None:
    """Bad input -> UsageError naming the argument, before any AWS call."""
    from urllib.parse import urlsplit

    from gameday.deployment import HOSTED_ZONE_ID, check_writable, is_dns_name

    if not is_dns_name(args.domain):
        raise UsageError(f"--domain: expected a DNS name like api.example.com, got {args.domain!r}")
    if args.hosted_zone_id is not None and not HOSTED_ZONE_ID.match(args.hosted_zone_id):
        raise UsageError(f"--hosted-zone-id: expected a Route 53 hosted zone id like Z0123456789ABCDEFGHIJ, "
                         f"got {args.hosted_zone_id!r}")
    if args.endpoint_url is not None:
        try:
            parts = urlsplit(args.endpoint_url)
            parts.port  # noqa: B018  (raises ValueError on a bad port)
        except ValueError:
            parts = urlsplit("")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"--endpoint-url: expected an http(s) URL like http://127.0.0.1:4566, "
                             f"got {args.endpoint_url!r}")
    if args.out is not None:
        check_writable(args.out, "--out")


def cmd_discover(args: argparse.Namespace) -> int:
    check_arguments(args)
    from botocore.exceptions import BotoCoreError

    from gameday.errors import GamedayError

    try:
        description, found = discover(args.domain, hosted_zone_id=args.hosted_zone_id,
                                      endpoint_url=args.endpoint_url)
    except BotoCoreError as exc:  # no connection, no credentials: one line, not a traceback
        raise GamedayError(f"discover: {exc}") from None
    for line in found.lines:
        print(f"found: {line}")
    if description is None:
        for problem in found.problems:
            print(f"gameday discover: {problem}", file=sys.stderr)
        return 2
    if args.endpoint_url:
        _local_environment(args.endpoint_url, description)
    import yaml

    from gameday.deployment import parse_deployment

    parse_deployment(description, source=f"discovered {args.domain}")  # what was written must load
    text = yaml.safe_dump(description, sort_keys=False)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        print(f"gameday discover: deployment description written to {args.out}")
    else:
        print(text, end="")
    return 0


def add_parser(sub: Any) -> None:
    """Register `gameday discover` on the command's subparsers."""
    discover_parser = sub.add_parser("discover", help="write the deployment description from what is deployed "
                                                      "(Route 53 records -> health checks -> APIs -> functions -> table)")
    discover_parser.add_argument("--domain", required=True, metavar="D", help="the global domain")
    discover_parser.add_argument("--hosted-zone-id", default=None, metavar="Z", help="its hosted zone (default: "
                                                                                      "the public zone that holds D)")
    discover_parser.add_argument("--endpoint-url", default=None, metavar="URL", help="an AWS endpoint (a local cloud)")
    discover_parser.add_argument("--out", default=None, metavar="FILE", help="write the description here "
                                                                             "(default: print it)")
    discover_parser.set_defaults(func=cmd_discover)
