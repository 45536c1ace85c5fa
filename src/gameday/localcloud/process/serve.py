"""Runs the embedded multi-region cloud in this process: `gameday local up` and the
process that `LocalCloud` starts.

Order matters: moto patches go in before the first request; the data plane and DNS
bind their ports before the deployment is provisioned, because the templates need
the data-plane port; the description is written last, when everything answers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from gameday.errors import UsageError
from gameday.localcloud.process.context import (
    HEALTH_DEPTHS,
    ROUTINGS,
    TABLE_VERSIONS,
    CloudContext,
    CloudSettings,
    RegionSpec,
)

READY_PREFIX = "GAMEDAY-LOCAL-READY "
DEFAULT_DESCRIPTION = "reports/local/deployment.yaml"


def region_addresses(settings: CloudSettings) -> list[RegionSpec]:
    """One loopback address per region: prefix.11, prefix.12, ...

    Without a fixed prefix a random 127.a.b. is drawn, so that independent clouds
    (pytest-xdist workers) never share an address even if they share a port number.
    """
    prefix = settings.address_prefix
    if prefix is None:
        rnd = random.SystemRandom()
        prefix = f"127.{rnd.randint(1, 254)}.{rnd.randint(0, 254)}."
    networks = client_networks(prefix, len(settings.regions)) if settings.tls else [None] * len(settings.regions)
    return [RegionSpec(name, f"{prefix}{11 + i}", networks[i]) for i, name in enumerate(settings.regions)]


def client_networks(prefix: str, count: int) -> list[str | None]:
    """A /24 per region, located in that region, apart from the regions' data-plane addresses:
    a client subnet of the default TestDNSAnswer mask (/24) then names one region, as a subnet
    from a region's address space does on AWS, while a /24 around the data-plane addresses
    (which holds every region's) names none. prefix "127.a.b." -> 127.a.(b+1).0/24, ..."""
    octets = [o for o in prefix.split(".") if o]
    if len(octets) != 3 or not all(o.isdigit() for o in octets):
        return [None] * count
    a, b = int(octets[1]), int(octets[2])
    return [f"127.{a}.{(b + 1 + i) % 256}.0/24" for i in range(count)]


def client_address(spec: RegionSpec) -> str:
    """An address "in" the region for its clients (EDNS0 client subnet): in its client network
    when it has one, else its data-plane address."""
    if spec.client_network:
        import ipaddress

        return str(ipaddress.ip_network(spec.client_network).network_address + 1)
    return spec.address


def validate_settings(settings: CloudSettings) -> None:
    """Bad input -> UsageError naming the argument, before anything starts."""
    from gameday.deployment import consistency_layout, known_regions

    known = known_regions()
    if len(settings.regions) < 2:
        raise UsageError(f"--regions: expected at least 2 regions, got {len(settings.regions)}")
    if len(set(settings.regions)) != len(settings.regions):
        raise UsageError("--regions: a region is named twice")
    for name in settings.regions:
        if name not in known:
            raise UsageError(f"--regions: unknown region {name!r}")
    if settings.table_version not in TABLE_VERSIONS:
        raise UsageError(f"--table-version: expected one of {', '.join(TABLE_VERSIONS)}, got {settings.table_version!r}")
    if settings.routing not in ROUTINGS:
        raise UsageError(f"--routing: expected one of {', '.join(ROUTINGS)}, got {settings.routing!r}")
    if settings.health_depth not in HEALTH_DEPTHS:
        raise UsageError(f"--health: expected one of {', '.join(HEALTH_DEPTHS)}, got {settings.health_depth!r}")
    if settings.routing == "failover" and len(settings.regions) != 2:
        raise UsageError("--routing: failover routing takes exactly 2 regions; use latency, or failover_pairs")
    if settings.pairs is not None and settings.routing != "failover_pairs":
        raise UsageError(f"--pairs: only with --routing failover_pairs, not {settings.routing}")
    if settings.routing == "failover_pairs" and not settings.tls:
        raise UsageError("--routing: failover_pairs needs --tls (its latency records alias each region's pair)")
    consistency_layout(settings.consistency, settings.witness, settings.regions, settings.table_version)
    if not (0 < settings.time_scale <= 1):
        raise UsageError(f"--time-scale: expected a number in (0, 1], got {settings.time_scale}")
    if settings.templates_dir is not None and not Path(settings.templates_dir).is_dir():
        raise UsageError(f"--templates: not a directory: {settings.templates_dir}")


class EmbeddedCloud:
    """All components of the local cloud, started and stopped in order."""

    def __init__(self, settings: CloudSettings) -> None:
        began = time.monotonic()
        from gameday.localcloud.process.startup import install_shared_botocore_loader

        install_shared_botocore_loader()  # before the first botocore Session: models parsed once
        validate_settings(settings)
        self.settings = settings
        self.ctx = CloudContext(settings=settings, regions=region_addresses(settings))
        self.description: dict[str, Any] = {}
        self._stoppers: list[Any] = []
        self.ca: Any = None   # the LocalCA, with settings.tls
        # Where start-up time goes (bench/local_cloud.py prints it); not written to the YAML file.
        self.startup_breakdown: dict[str, float] = {"init_s": round(time.monotonic() - began, 3)}

    def start(self) -> dict[str, Any]:
        started = time.monotonic()
        try:
            self._start_components()
            provision_began = time.monotonic()
            self.description = self._provision()
        except BaseException:
            self.stop()
            raise
        now = time.monotonic()
        self.startup_breakdown["provision_s"] = round(now - provision_began, 3)
        self.description["startup_s"] = round(now - started, 3)
        self.description["startup_breakdown"] = dict(self.startup_breakdown)
        return self.description

    def _start_components(self) -> None:
        began = time.monotonic()
        from gameday.localcloud.process import startup

        startup.install()  # before the components import moto's service modules
        from gameday.localcloud.apigateway.dataplane import DataPlane
        from gameday.localcloud.awslambda.runtime import LambdaRuntime
        from gameday.localcloud.dynamodb.global_tables_api import GlobalTables
        from gameday.localcloud.motoglue.server import AwsEndpoint, install_speedups
        from gameday.localcloud.route53.physics import Route53Physics

        install_speedups()
        imported = time.monotonic()
        self.startup_breakdown["imports_s"] = round(imported - began, 3)

        ctx = self.ctx
        for spec in ctx.regions:
            ctx.names.add_suffix(f".execute-api.{spec.name}.amazonaws.com", spec.address)
        self._add_control_routes()
        from gameday.localcloud.apigateway import custom_domains

        custom_domains.install()   # CreateDomainName checks its ACM certificate
        tls_front = self._start_tls() if self.settings.tls else None

        tables = GlobalTables(ctx)
        runtime = LambdaRuntime(ctx, in_process_aws=self.settings.handler_transport == "in-process")
        route53 = Route53Physics(ctx)
        for component in (tables, runtime, route53):
            component.install()  # moto patches, before the first request

        try:
            endpoint = AwsEndpoint(self.settings.host, self.settings.aws_port, ctx.control)
        except OSError as exc:
            raise UsageError(f"--aws-port: cannot listen on {self.settings.host}:{self.settings.aws_port} ({exc.strerror})") from exc
        endpoint.start()
        self._stoppers.append(endpoint)
        ctx.aws_endpoint_url = endpoint.url
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "gameday-local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "gameday-local")

        tables.start()
        self._stoppers.append(tables)
        self._stoppers.append(runtime)  # stopped after the data plane that calls it
        dataplane = DataPlane(ctx, runtime, tls=tls_front)
        try:
            dataplane.start()
        except OSError as exc:
            raise UsageError(f"--port: cannot listen on port {self.settings.data_plane_port} ({exc.strerror})") from exc
        self._stoppers.append(dataplane)
        try:
            route53.start()
        except OSError as exc:
            raise UsageError(f"--dns-port: cannot listen on {self.settings.host}:{self.settings.dns_port} ({exc.strerror})") from exc
        self._stoppers.append(route53)
        self.startup_breakdown["components_s"] = round(time.monotonic() - imported, 3)

    def _start_tls(self) -> Any:
        """The cloud's CA (in the work dir), ACM issuing from it, and the data plane's TLS front."""
        from gameday.localcloud.apigateway import custom_domains
        from gameday.localcloud.tls import acm
        from gameday.localcloud.tls.ca import LocalCA
        from gameday.localcloud.tls.front import TlsFront

        work_dir = self.settings.work_dir
        if work_dir is None:
            import tempfile

            holder = tempfile.TemporaryDirectory(prefix="gameday-local-tls-")
            self._stoppers.append(_Cleanup(holder.cleanup))
            work_dir = holder.name
        self.ca = LocalCA(Path(work_dir) / "tls")
        acm.bind(self.ca)
        return TlsFront(self.ca, [spec.name for spec in self.ctx.regions], custom_domains.certificate_for)

    def _provision(self) -> dict[str, Any]:
        from gameday.localcloud.cloudformation.provisioning import provision_local

        description = provision_local(self.ctx)
        host, port = self.ctx.dns_address
        description.update({
            "target": "local",
            "aws_endpoint_url": self.ctx.aws_endpoint_url,
            "control_url": f"{self.ctx.aws_endpoint_url}/_gameday",
            "time_scale": self.settings.time_scale,
            "dns_resolver": f"{host}:{port}",
        })
        by_name = {r.name: r for r in self.ctx.regions}
        for region in description["regions"]:
            region.setdefault("client_address", by_name[region["name"]].address)
        if self.settings.tls:
            port = self.ctx.data_plane_port
            description["global_url"] = f"https://{self.settings.domain.rstrip('.')}:{port}"
            description["ca_bundle"] = str(self.ca.bundle_path)
            for region in description["regions"]:
                spec = by_name[region["name"]]
                region["api_url"] = f"https://{region['api_host']}:{port}/prod"
                region["client_address"] = client_address(spec)
                region["client_network"] = spec.client_network
                region["address"] = spec.address
        return description

    def _add_control_routes(self) -> None:
        ctx = self.ctx

        def events(query: dict[str, str], _body: Any) -> tuple[int, Any]:
            since = int(query.get("since", "0"))
            found = ctx.truth.events(since=since, kind=query.get("kind"))
            last = found[-1]["seq"] if found else since
            return 200, {"events": found, "last_seq": last, "current_seq": ctx.truth.last_seq}

        ctx.control.add("GET", "/_gameday/events", events)
        ctx.control.add("GET", "/_gameday/description", lambda q, b: (200, self.description))
        from gameday.localcloud import control_routes as debug_routes

        if debug_routes.enabled():  # profiling routes for perf work (GAMEDAY_LOCAL_DEBUG=1)
            debug_routes.add_routes(ctx.control)

    def stop(self) -> None:
        while self._stoppers:
            component = self._stoppers.pop()
            try:
                component.stop()
            except Exception as exc:  # keep stopping the rest
                print(f"gameday local: error stopping {type(component).__name__}: {exc}", file=sys.stderr)


class _Cleanup:
    """A stopper that runs one function (a temporary folder's cleanup)."""

    def __init__(self, action: Any) -> None:
        self._action = action

    def stop(self) -> None:
        self._action()


def write_description(description: dict[str, Any], path: str | Path) -> Path:
    """Atomic write, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    public = {k: v for k, v in description.items() if k not in ("startup_s", "startup_breakdown")}
    tmp.write_text(yaml.safe_dump(public, sort_keys=False))
    os.replace(tmp, path)
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from gameday.table_consistency import add_consistency_arguments

    parser.add_argument("--regions", default="eu-west-1,us-east-1", help="comma-separated, at least 2")
    parser.add_argument("--time-scale", type=float, default=0.01, help="local seconds per AWS second (0.01: 30 s -> 0.3 s)")
    parser.add_argument("--table-version", default=None, metavar="2017.11.29|2019.11.21",
                        help="the global table's version (default 2017.11.29; 2019.11.21 with --consistency strong)")
    add_consistency_arguments(parser)
    parser.add_argument("--mrsc-commit", type=float, default=CloudSettings.mrsc_commit_s, metavar="S",
                        help="with --consistency strong: AWS seconds a write takes to commit across the regions "
                             f"(default {CloudSettings.mrsc_commit_s:g})")
    parser.add_argument("--routing", default="failover", metavar="failover|latency|failover_pairs")
    parser.add_argument("--pairs", default=None, metavar="R:P,...",
                        help="with --routing failover_pairs: each region's failover partner "
                             "(default: the next region in --regions, the last's the first)")
    parser.add_argument("--health", default="deep", metavar="deep|shallow",
                        help="the reference /health: deep (also writes and reads back the region's own item "
                             "in the table, the default) or shallow (the article's: its environment only)")
    parser.add_argument("--templates", default=None, metavar="DIR", help="your own templates of the same resource types")
    parser.add_argument("--deployment-out", default=DEFAULT_DESCRIPTION, metavar="FILE")
    parser.add_argument("--port", type=int, default=8080, help="the regions' data-plane port (0: any free port)")
    parser.add_argument("--aws-port", type=int, default=0, help="the AWS API endpoint's port (0: any free port)")
    parser.add_argument("--dns-port", type=int, default=0, help="the DNS server's UDP port (0: any free port)")
    parser.add_argument("--address-prefix", default="127.0.0.", help="regions listen on PREFIX11, PREFIX12, ... ('random': 127.a.b.)")
    parser.add_argument("--replication-delay", type=float, default=0.5, help="AWS seconds before a write is replicated")
    parser.add_argument("--health-check-interval", type=int, default=10, choices=(10, 30))
    parser.add_argument("--failure-threshold", type=int, default=3)
    parser.add_argument("--ttl", type=int, default=60,
                        help="the custom domain records' TTL (AWS seconds; with alias records, their target's: 60)")
    parser.add_argument("--records", default=None, choices=("alias", "cname"),
                        help="the custom domain's records: alias A records (the default with --tls) or CNAMEs to "
                             "each region's domain target, with the TTL of --ttl (the only kind with --no-tls)")
    parser.add_argument("--handler-transport", default="in-process", choices=("in-process", "http"),
                        help="how handlers' boto3 calls reach AWS_ENDPOINT_URL: straight into the endpoint's app "
                             "(default, faster) or over loopback TCP")
    parser.add_argument("--tls", action=argparse.BooleanOptionalAction, default=True,
                        help="the shape real deployments have (the default): HTTPS with a local CA (the "
                             "description's ca_bundle), ACM certificates, regional custom domains with base path "
                             "mappings, alias A records, HTTPS health checks with SNI, a client network per region; "
                             "--no-tls: the old HTTP shape (CNAME records to the execute-api hosts)")
    parser.add_argument("--work-dir", default=None, metavar="DIR",
                        help="where the cloud keeps its CA and certificates (default: beside --deployment-out)")


def address_prefix(text: str) -> str | None:
    """The --address-prefix value as "127.a.b." (regions on .11, .12, ...); None for 'random'."""
    if text == "random":
        return None
    octets = text.rstrip(".").split(".")
    if len(octets) != 3 or not all(o.isdigit() and int(o) <= 255 for o in octets) or octets[0] != "127":
        raise UsageError(f"--address-prefix: expected the first three octets of a loopback address like 127.0.0 "
                         f"(regions then listen on 127.0.0.11, 127.0.0.12, ...) or 'random', got {text!r}")
    return ".".join(str(int(o)) for o in octets) + "."


def settings_from_args(args: argparse.Namespace) -> CloudSettings:
    if not (1 <= args.failure_threshold <= 10):
        raise UsageError(f"--failure-threshold: expected 1 to 10, got {args.failure_threshold}")
    for name in ("port", "aws_port", "dns_port"):
        value = getattr(args, name)
        if not (0 <= value <= 65535):
            raise UsageError(f"--{name.replace('_', '-')}: expected a port 0-65535, got {value}")
    if args.ttl < 0:
        raise UsageError(f"--ttl: expected a non-negative number of seconds, got {args.ttl}")
    from gameday.provision import ALIAS_TARGET_TTL_S

    records = args.records or ("alias" if args.tls else "cname")
    if records == "alias" and not args.tls:
        raise UsageError("--records: alias records point at a regional custom domain, which only --tls has")
    if records == "alias" and args.ttl != ALIAS_TARGET_TTL_S:
        raise UsageError(f"--ttl: alias records answer with their target's TTL ({ALIAS_TARGET_TTL_S} s), not "
                         f"{args.ttl}; add --records cname for records with a TTL of their own")
    if not (math.isfinite(args.replication_delay) and args.replication_delay >= 0):
        raise UsageError(f"--replication-delay: expected a number of AWS seconds >= 0, got {args.replication_delay}")
    if not (math.isfinite(args.mrsc_commit) and args.mrsc_commit >= 0):
        raise UsageError(f"--mrsc-commit: expected a number of AWS seconds >= 0, got {args.mrsc_commit}")
    prefix = address_prefix(args.address_prefix)
    regions = [r.strip() for r in args.regions.split(",") if r.strip()]
    from gameday.deployment import consistency_layout

    consistency, witness, version = consistency_layout(args.consistency, args.witness, regions, args.table_version)
    from gameday.deployment import failover_pairs

    pairs = failover_pairs(args.pairs, regions) if args.pairs is not None else None
    return CloudSettings(
        regions=regions,
        time_scale=args.time_scale,
        table_version=version or CloudSettings.table_version,
        consistency=consistency,
        witness=witness,
        mrsc_commit_s=args.mrsc_commit,
        routing=args.routing,
        pairs=pairs,
        health_depth=args.health,
        templates_dir=args.templates,
        data_plane_port=args.port,
        aws_port=args.aws_port,
        dns_port=args.dns_port,
        address_prefix=prefix,
        replication_delay_s=args.replication_delay,
        request_interval_s=args.health_check_interval,
        failure_threshold=args.failure_threshold,
        record_ttl_s=args.ttl,
        record_type=records,
        handler_transport=args.handler_transport,
        tls=args.tls,
        work_dir=args.work_dir or str(Path(args.deployment_out).resolve().parent),
    )


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each thread that allocates its own malloc arena (up to 8 per core); with the
    cloud's many short-lived threads (one per data-plane connection, the Lambda pool) freed memory
    stays scattered over them and RSS creeps up (~2.4 MiB/min at 60 requests/s, 0.9 with 2
    arenas). Same effect as MALLOC_ARENA_MAX=2; before the threads start. No-op off glibc."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def run_foreground(args: argparse.Namespace, ready_line: bool = False) -> int:
    """Start, print the endpoints, write the description, serve until Ctrl-C / SIGTERM."""
    entered = time.time()
    from gameday.localcloud.process import startup

    startup.pause_collector()  # until ready: see gameday/localcloud/process/startup.py
    limit_malloc_arenas()
    settings = settings_from_args(args)
    cloud = EmbeddedCloud(settings)   # checks the settings; starts nothing
    from gameday.deployment import check_writable

    check_writable(args.deployment_out, "--deployment-out")   # before the cloud starts, never after
    if settings.tls and settings.work_dir is not None:
        check_writable(settings.work_dir, "--work-dir" if args.work_dir else "--deployment-out", folder=True)
    cloud.startup_breakdown["main_entered_at"] = entered  # wall clock: a launcher subtracts its launch time
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        description = cloud.start()  # a Ctrl-C before this point aborts the start-up
        # From here Ctrl-C asks to stop, as SIGTERM does: one arriving while the description is
        # written and the endpoints printed is not lost in the middle of them.
        previous_int = signal.signal(signal.SIGINT, lambda *_: stop.set())
        try:
            try:
                path = write_description(description, args.deployment_out)
            except OSError as exc:
                raise UsageError(f"--deployment-out: cannot write {args.deployment_out} "
                                 f"({exc.strerror or type(exc).__name__})") from None
            if ready_line:
                print(READY_PREFIX + json.dumps({"deployment": str(path), **description}), flush=True)
            else:
                print_endpoints(description, path)
            startup.settle_collector()
            while not stop.wait(0.5):
                pass
        finally:
            signal.signal(signal.SIGINT, previous_int)
        if not ready_line:
            print("gameday local: stopping", flush=True)
    finally:
        cloud.stop()
        signal.signal(signal.SIGTERM, previous)
    return 0


def print_endpoints(description: dict[str, Any], path: Path) -> None:
    print(f"gameday local cloud up in {description.get('startup_s', 0):.2f} s "
          f"(time scale {description['time_scale']}: 1 local second = {1 / description['time_scale']:g} AWS seconds)")
    print(f"  AWS endpoint   {description['aws_endpoint_url']}   (boto3 endpoint_url / aws --endpoint-url)")
    print(f"  DNS server     {description['dns_resolver']} (udp, tcp)   dig @{description['dns_resolver'].replace(':', ' -p ')} {description['domain']}")
    print(f"  global URL     {description['global_url']}   ({description['routing']} routing)")
    for region in description["regions"]:
        print(f"  {region['name']:<14} {region['api_url']}   health check {region['health_check_id']}")
    if description.get("ca_bundle"):
        print(f"  CA bundle      {description['ca_bundle']}   (curl --cacert, AWS_CA_BUNDLE, requests verify=)")
    print(f"  deployment     {path}")
    print("Ctrl-C stops it.", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gameday.localcloud.process.serve")
    add_arguments(parser)
    parser.add_argument("--ready-line", action="store_true", help="print one machine-readable line when up (LocalCloud)")
    parser.add_argument("--parent-pid", type=int, default=None, metavar="PID",
                        help="stop when this process, the one that started this one, is gone (LocalCloud)")
    args = parser.parse_args(argv)
    if args.parent_pid is not None:
        from gameday.localcloud.process.lifeline import die_with_parent

        die_with_parent(args.parent_pid)
    try:
        return run_foreground(args, ready_line=args.ready_line)
    except UsageError as exc:
        print(f"gameday local: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
