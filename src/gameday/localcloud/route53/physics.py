"""Route 53 physics for serve.py: the checker fleet, the record evaluation, the DNS server,
the API patches, the API rate limits and the CloudWatch metrics, wired in one object.

    physics = Route53Physics(ctx)
    physics.install()   # before the AWS endpoint serves its first Route 53 request
    physics.start()     # sets ctx.dns_address
    ...
    physics.stop()
"""

from __future__ import annotations

from typing import Any

from gameday.localcloud.process.context import CloudContext
from gameday.localcloud.route53 import api as route53_api
from gameday.localcloud.route53 import throttling
from gameday.localcloud.route53.dns_answers import DnsAnswers
from gameday.localcloud.route53.dns_server import DnsServer
from gameday.localcloud.route53.health_checkers import HealthCheckerFleet
from gameday.localcloud.route53.metrics import HealthCheckMetrics


class Route53Physics:
    def __init__(self, ctx: CloudContext, *, record_every_result: bool = False) -> None:
        self.ctx = ctx
        self.fleet = HealthCheckerFleet(ctx, record_every_result=record_every_result)
        self.answers = DnsAnswers(ctx, self.fleet)
        self.dns = DnsServer(ctx, self.answers)
        self.metrics = HealthCheckMetrics(ctx, self.fleet)
        self.limits: throttling.Route53Limits | None = None

    def install(self) -> None:
        route53_api.install(self.ctx, self.fleet, self.answers)
        self.limits = throttling.install(self.ctx)
        self.ctx.control.add("GET", "/_gameday/route53/status", self._control_status)
        self.ctx.control.add("GET", "/_gameday/route53/throttling", self._control_throttling)
        self.ctx.control.add("POST", "/_gameday/route53/throttling", self._control_throttling_set)
        self.ctx.control.add("POST", "/_gameday/route53/checkers", self._control_checkers_set)

    def start(self) -> None:
        self.dns.start()
        self.fleet.start()
        self.answers.start()
        self.metrics.start()

    def stop(self) -> None:
        self.metrics.stop()
        self.fleet.stop()
        self.answers.stop()
        self.dns.stop()

    def _control_status(self, query: dict[str, str], _body: Any) -> tuple[int, Any]:
        """Each health check's aggregate and the current answers (diagnosis, not for polling)."""
        checks = {hc: {"healthy": self.fleet.status(hc), "healthy_fraction": self.fleet.healthy_fraction(hc)}
                  for hc in self.fleet.known()}
        return 200, {"health_checks": checks, "dns_answers": self.answers.current(),
                     "dns_address": list(self.ctx.dns_address), "probes": self.fleet.probe_count()}

    def _control_checkers_set(self, _query: dict[str, str], body: Any) -> tuple[int, Any]:
        """{"pace": x}: every checker probes every RequestInterval x x from its next probe on (1 is
        on time; more is a fleet running behind, as a starved machine makes it)."""
        body = body if isinstance(body, dict) else {}
        pace = body.get("pace")
        if not isinstance(pace, (int, float)) or isinstance(pace, bool) or not 1 <= pace <= 20:
            return 400, {"error": "pace: expected a number from 1 to 20"}
        self.fleet.pace = float(pace)
        return 200, {"pace": self.fleet.pace}

    def _control_throttling(self, _query: dict[str, str], _body: Any) -> tuple[int, Any]:
        """Route 53 API requests allowed and throttled per operation (every caller of the account)."""
        return 200, self.limits.figures() if self.limits is not None else {}

    def _control_throttling_set(self, _query: dict[str, str], body: Any) -> tuple[int, Any]:
        """{"enforce": bool} switches the buckets (AWS cannot; tests that need a free hand can),
        {"reset_counts": true} zeroes the counts."""
        if self.limits is None:
            return 409, {"error": "not installed"}
        body = body if isinstance(body, dict) else {}
        if "enforce" in body:
            self.limits.enabled = bool(body["enforce"])
        if body.get("reset_counts"):
            self.limits.reset_counts()
        return 200, self.limits.figures()
