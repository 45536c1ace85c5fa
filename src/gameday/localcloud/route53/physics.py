"""Route 53 physics for serve.py: the checker fleet, the record evaluation, the DNS server
and the API patches, wired in one object.

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
from gameday.localcloud.route53.dns_answers import DnsAnswers
from gameday.localcloud.route53.dns_server import DnsServer
from gameday.localcloud.route53.health_checkers import HealthCheckerFleet


class Route53Physics:
    def __init__(self, ctx: CloudContext, *, record_every_result: bool = False) -> None:
        self.ctx = ctx
        self.fleet = HealthCheckerFleet(ctx, record_every_result=record_every_result)
        self.answers = DnsAnswers(ctx, self.fleet)
        self.dns = DnsServer(ctx, self.answers)

    def install(self) -> None:
        route53_api.install(self.ctx, self.fleet, self.answers)
        self.ctx.control.add("GET", "/_gameday/route53/status", self._control_status)

    def start(self) -> None:
        self.dns.start()
        self.fleet.start()
        self.answers.start()

    def stop(self) -> None:
        self.fleet.stop()
        self.answers.stop()
        self.dns.stop()

    def _control_status(self, query: dict[str, str], _body: Any) -> tuple[int, Any]:
        """Each health check's aggregate and the current answers (diagnosis, not for polling)."""
        checks = {hc: {"healthy": self.fleet.status(hc), "healthy_fraction": self.fleet.healthy_fraction(hc)}
                  for hc in self.fleet.known()}
        return 200, {"health_checks": checks, "dns_answers": self.answers.current(),
                     "dns_address": list(self.ctx.dns_address), "probes": self.fleet.probe_count()}
