"""Route 53 API operations moto lacks or fakes, answered from the checker fleet and the
record evaluation: GetHealthCheckStatus, GetHealthCheckLastFailureReason, TestDNSAnswer; and
ChangeResourceRecordSets refusing what Route 53 refuses (a CNAME at the zone apex).

moto picks the operation from botocore's model, so adding URL routes and methods on its
Route53 response class is enough; its serializer writes valid AWS XML and AWS-shaped
errors. Routes must be added before the first Route 53 request (moto builds its URL map
for a service on that service's first request).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from moto.core.responses import ActionResult
from moto.route53 import responses as r53_responses
from moto.route53 import urls as r53_urls
from moto.route53.exceptions import InvalidInput, Route53ClientError

from gameday.localcloud.motoglue.patches import declare
from gameday.localcloud.process.context import CloudContext
from gameday.localcloud.route53.dns_answers import DnsAnswers
from gameday.localcloud.route53.health_checkers import HealthCheckerFleet

RECORD_TYPES = ("SOA", "A", "TXT", "NS", "CNAME", "MX", "NAPTR", "PTR", "SRV", "SPF", "AAAA",
                "CAA", "DS", "TLSA", "SSHFP", "SVCB", "HTTPS")
MAX_HEALTH_CHECK_ID = 64
ROUTES = {
    r"{0}/(?P<api_version>[\d_-]+)/healthcheck/(?P<health_check_id>[^/]+)/lastfailurereason$":
        r53_responses.Route53.dispatch,
    r"{0}/(?P<api_version>[\d_-]+)/testdnsanswer$": r53_responses.Route53.dispatch,
}

URL_PATHS = declare("moto.route53.urls:url_paths",
                    why="add URL routes for GetHealthCheckLastFailureReason and TestDNSAnswer")
STATUS = declare("moto.route53.responses:Route53.get_health_check_status",
                 why="moto hard-codes one success; answer from the checker fleet",
                 signature="(self) -> moto.core.responses.ActionResult")
LAST_FAILURE = declare("moto.route53.responses:Route53.get_health_check_last_failure_reason", kind="add",
                       why="moto lacks GetHealthCheckLastFailureReason")
TEST_DNS = declare("moto.route53.responses:Route53.test_dns_answer", kind="add",
                   why="moto lacks TestDNSAnswer")

CHANGE_RECORDS = declare("moto.route53.models:Route53Backend.change_resource_record_sets", kind="wrap",
                         signature="(self, zoneid: str, change_list: list[dict[str, typing.Any]]) -> None",
                         why="moto accepts a CNAME at the zone apex; Route 53 refuses the whole batch")

# One local cloud per process (moto's backends are process-wide): the installed components.
_BOUND: dict[str, Any] = {}


def _fleet() -> HealthCheckerFleet:
    return _BOUND["fleet"]


def _checked_health_check(response: Any) -> str:
    hc_id = response._get_param("HealthCheckId") or ""
    if len(hc_id) > MAX_HEALTH_CHECK_ID:
        raise InvalidInput(f"1 validation error detected: Value '{hc_id}' at 'healthCheckId' failed to satisfy "
                           f"constraint: Member must have length less than or equal to {MAX_HEALTH_CHECK_ID}")
    hc = response.backend.get_health_check(hc_id)            # NoSuchHealthCheck
    if str(hc.type_).upper() in ("CALCULATED", "CLOUDWATCH_METRIC"):
        raise InvalidInput(f"The health check {hc_id} is a {hc.type_} health check; "
                           "GetHealthCheckStatus does not work for it")
    return hc_id


def get_health_check_status(self: Any) -> ActionResult:
    hc_id = _checked_health_check(self)
    return ActionResult({"HealthCheckObservations": _fleet().observations(hc_id)})


def get_health_check_last_failure_reason(self: Any) -> ActionResult:
    hc_id = _checked_health_check(self)
    return ActionResult({"HealthCheckObservations": _fleet().last_failures(hc_id)})


def _ip(value: str | None, field: str) -> str | None:
    if value in (None, ""):
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise InvalidInput(f"Invalid IP address for {field}: {value}") from None


def test_dns_answer(self: Any) -> ActionResult:
    answers: DnsAnswers = _BOUND["answers"]
    zone_id = self._get_param("HostedZoneId")
    name = self._get_param("RecordName")
    rtype = (self._get_param("RecordType") or "").upper()
    for field, value in (("hostedzoneid", zone_id), ("recordname", name), ("recordtype", rtype)):
        if not value:
            raise InvalidInput(f"Missing required parameter {field}")
    if rtype not in RECORD_TYPES:
        raise InvalidInput(f"Invalid record type {rtype}; expected one of {', '.join(RECORD_TYPES)}")
    resolver_ip = _ip(self._get_param("ResolverIP"), "resolverip")
    ecs_ip = _ip(self._get_param("EDNS0ClientSubnetIP"), "edns0clientsubnetip")
    raw_mask = self._get_param("EDNS0ClientSubnetMask")
    mask = None
    if raw_mask not in (None, ""):
        if ecs_ip is None:
            raise InvalidInput("edns0clientsubnetmask requires edns0clientsubnetip")
        limit = ipaddress.ip_address(ecs_ip).max_prefixlen
        if not str(raw_mask).isdigit() or not 0 <= int(raw_mask) <= limit:
            raise InvalidInput(f"Invalid edns0clientsubnetmask {raw_mask}; expected 0-{limit}")
        mask = int(raw_mask)
    zone = self.backend.get_hosted_zone(zone_id)               # NoSuchHostedZone
    zone_name = zone.name.rstrip(".").lower()
    key = name.rstrip(".").lower()
    if key != zone_name and not key.endswith("." + zone_name):
        raise InvalidInput(f"The record name {name} is not in the hosted zone {zone.name}")
    return ActionResult(answers.test_dns_answer(zone, name, rtype, resolver_ip=resolver_ip, ecs_ip=ecs_ip, ecs_mask=mask))


class ApexCname(Route53ClientError):
    def __init__(self, name: str, zone_name: str) -> None:
        super().__init__("InvalidChangeBatch",
                         f"[RRSet of type CNAME with DNS name {name} is not permitted at apex in zone {zone_name}]")


def apex_cname(zone_name: str, record: dict[str, Any]) -> str | None:
    """The record's dot-terminated name when it is a CNAME at the zone's apex (refused), else None."""
    name = str(record.get("Name") or "").rstrip(".").lower()
    if str(record.get("Type") or "").upper() == "CNAME" and name == zone_name.rstrip(".").lower():
        return name + "."
    return None


def change_resource_record_sets(self: Any, zoneid: str, change_list: list[dict[str, Any]]) -> None:
    """Checked as a whole before anything changes: one bad change refuses the batch."""
    zone = self.get_hosted_zone(zoneid)
    for change in change_list:
        if str(change.get("Action", "")).upper() in ("CREATE", "UPSERT"):
            refused = apex_cname(zone.name, change.get("ResourceRecordSet") or {})
            if refused is not None:
                raise ApexCname(refused, zone.name.rstrip(".") + ".")
    CHANGE_RECORDS.original()(self, zoneid, change_list)


def install(ctx: CloudContext, fleet: HealthCheckerFleet, answers: DnsAnswers) -> None:
    """Bind the components and apply the patches (idempotent; before the first request)."""
    _BOUND.update(ctx=ctx, fleet=fleet, answers=answers)
    current = URL_PATHS.original() or r53_urls.url_paths
    URL_PATHS.apply({**current, **ROUTES})
    STATUS.apply(get_health_check_status)
    LAST_FAILURE.apply(get_health_check_last_failure_reason)
    TEST_DNS.apply(test_dns_answer)
    CHANGE_RECORDS.apply(change_resource_record_sets)
