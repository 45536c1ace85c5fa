"""A small Route 53 rig for the tests: the AWS endpoint, Route53Physics, and one switchable
HTTP server per region standing in for the regions' /prod/health (on their own loopback
addresses, one port), with hosted zones, health checks and records made over boto3."""

from __future__ import annotations

import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
from botocore.config import Config
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, stop_after_delay, wait_fixed

from gameday.localcloud.motoglue.server import AwsEndpoint
from gameday.localcloud.process.context import CloudContext, CloudSettings, RegionSpec
from gameday.localcloud.route53.physics import Route53Physics

REGIONS = ["eu-west-1", "us-east-1"]
TIME_SCALE = 0.01
INTERVAL = 10          # AWS seconds -> 0.1 s locally
THRESHOLD = 3


class _Server(ThreadingHTTPServer):
    request_queue_size = 128   # 32 checkers connecting at once must not overflow the accept backlog


class RegionServer:
    """Answers GET /prod/health with a switchable status; stop() makes it refuse connections."""

    def __init__(self, address: str, port: int) -> None:
        self.status = 200
        self.body = b'{"status": "ok"}'
        rig = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                status = rig.status if self.path.startswith("/prod/health") else 404
                body = rig.body if status < 400 else b'{"message": "down"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _Server((address, port), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, client_address: None   # resets at shutdown: noise
        self.address, self.port = self.server.server_address[:2]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.running = False
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(timeout=5)


def start_region_servers(count: int) -> list[RegionServer]:
    """One server per region on 127.x.y.11, .12, ... all on one port (retried on a port clash)."""
    for attempt in Retrying(stop=stop_after_attempt(10), retry=retry_if_exception_type(OSError), reraise=True):
        with attempt:
            prefix = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}."
            servers: list[RegionServer] = []
            try:
                servers.append(RegionServer(prefix + "11", 0))
                for i in range(1, count):
                    servers.append(RegionServer(f"{prefix}{11 + i}", servers[0].port))
            except OSError:
                for server in servers:
                    server.stop()
                raise
    return servers


@dataclass
class Rig:
    ctx: CloudContext
    endpoint: AwsEndpoint
    physics: Route53Physics
    servers: dict[str, RegionServer]
    route53: Any
    made: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.ctx.data_plane_port

    def api_host(self, region: str) -> str:
        return f"api{REGIONS.index(region)}abc.execute-api.{region}.amazonaws.com"

    def scaled(self, aws_seconds: float) -> float:
        return self.ctx.scale.seconds(aws_seconds)

    def health_check(self, region: str, **overrides: Any) -> str:
        config = {"Type": "HTTP", "FullyQualifiedDomainName": self.api_host(region), "Port": self.port,
                  "ResourcePath": "/prod/health", "RequestInterval": INTERVAL, "FailureThreshold": THRESHOLD}
        config.update(overrides)
        config = {key: value for key, value in config.items() if value is not None}
        hc_id = self.route53.create_health_check(CallerReference=str(uuid.uuid4()),
                                                 HealthCheckConfig=config)["HealthCheck"]["Id"]
        self.made.append(("hc", hc_id))
        return hc_id

    def zone(self, routing: str, checks: dict[str, str | None]) -> tuple[str, str, str]:
        """A fresh hosted zone with api.<zone> routed over the regions; (zone_id, zone, domain)."""
        zone = f"z{uuid.uuid4().hex[:8]}.gameday.test"
        zone_id = self.route53.create_hosted_zone(Name=zone, CallerReference=str(uuid.uuid4()))[
            "HostedZone"]["Id"].split("/")[-1]
        self.made.append(("zone", zone_id))
        domain = f"api.{zone}"
        changes = []
        for i, region in enumerate(checks):
            record = {"Name": domain, "Type": "CNAME", "SetIdentifier": region, "TTL": 60,
                      "ResourceRecords": [{"Value": self.api_host(region)}]}
            if checks[region]:
                record["HealthCheckId"] = checks[region]
            if routing == "failover":
                record["Failover"] = "PRIMARY" if i == 0 else "SECONDARY"
            else:
                record["Region"] = region
            changes.append({"Action": "CREATE", "ResourceRecordSet": record})
        self.route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})
        return zone_id, zone, domain

    def wait_health(self, hc_id: str, healthy: bool, budget_s: float) -> float:
        """Poll the fleet's aggregate until it is `healthy`; the local seconds it took."""
        started = time.monotonic()
        for attempt in Retrying(stop=stop_after_delay(budget_s), wait=wait_fixed(0.01), reraise=True):
            with attempt:
                assert self.physics.fleet.status(hc_id) is healthy, f"{hc_id} healthy={not healthy}"
        return time.monotonic() - started

    def cleanup(self) -> None:
        for kind, ident in reversed(self.made):
            try:
                if kind == "hc":
                    self.route53.delete_health_check(HealthCheckId=ident)
                else:
                    sets = self.route53.list_resource_record_sets(HostedZoneId=ident)["ResourceRecordSets"]
                    changes = [{"Action": "DELETE", "ResourceRecordSet": rs} for rs in sets
                               if rs["Type"] not in ("NS", "SOA")]
                    if changes:
                        self.route53.change_resource_record_sets(HostedZoneId=ident,
                                                                 ChangeBatch={"Changes": changes})
                    self.route53.delete_hosted_zone(Id=ident)
            except Exception:  # noqa: BLE001 - best effort: the next test uses fresh names anyway
                pass
        self.made.clear()
        for server in self.servers.values():
            server.status = 200


def start_rig() -> Rig:
    servers = start_region_servers(len(REGIONS))
    settings = CloudSettings(regions=list(REGIONS), time_scale=TIME_SCALE, host="127.0.0.1", dns_port=0)
    ctx = CloudContext(settings=settings, regions=[RegionSpec(r, s.address) for r, s in zip(REGIONS, servers, strict=True)],
                       data_plane_port=servers[0].port)
    for spec in ctx.regions:
        ctx.names.add_suffix(f".execute-api.{spec.name}.amazonaws.com", spec.address)
    physics = Route53Physics(ctx, record_every_result=True)   # tests check every result
    physics.install()
    endpoint = AwsEndpoint("127.0.0.1", 0, ctx.control)
    endpoint.start()
    ctx.aws_endpoint_url = endpoint.url
    physics.start()
    client = boto3.client("route53", endpoint_url=endpoint.url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing",
                          config=Config(retries={"max_attempts": 1, "mode": "standard"}))
    return Rig(ctx, endpoint, physics, dict(zip(REGIONS, servers, strict=True)), client)


def stop_rig(rig: Rig) -> None:
    rig.cleanup()
    rig.physics.stop()
    rig.endpoint.stop()
    for server in rig.servers.values():
        server.stop()
