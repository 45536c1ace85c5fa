"""The custom domain's Route 53 records as ListResourceRecordSets lists them, and the failover pair
behind a latency record.

Under failover between chosen pairs a latency record carries no health check of its own: it is an
alias to another name of the same zone (the region's failover pair), which Route 53 evaluates with
EvaluateTargetHealth. Whoever reads the domain's records (discover, plan) has to follow that alias
one step to find each region's health check and its partner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ADDRESS_TYPES = ("A", "AAAA", "CNAME")


def fqdn(name: str) -> str:
    return name.rstrip(".").lower() + "."


def records_at(route53: Any, zone_id: str, name: str) -> list[dict[str, Any]]:
    """Every A, AAAA and CNAME record named `name` in the zone, across pages."""
    out: list[dict[str, Any]] = []
    for page in route53.get_paginator("list_resource_record_sets").paginate(HostedZoneId=zone_id,
                                                                            StartRecordName=fqdn(name)):
        for record in page["ResourceRecordSets"]:
            if fqdn(record["Name"]) == fqdn(name) and record["Type"] in ADDRESS_TYPES:
                out.append(record)
    return out


def in_zone_alias(record: dict[str, Any], zone_id: str) -> str | None:
    """The name an alias record points at when it is in the record's own zone (a pair), else None
    (an alias to API Gateway's regional domain names lives in API Gateway's zone)."""
    alias = record.get("AliasTarget")
    if not alias or _zone_id(str(alias.get("HostedZoneId", ""))) != _zone_id(zone_id):
        return None
    return fqdn(str(alias["DNSName"]))


def _zone_id(text: str) -> str:
    """"Z123" from "/hostedzone/Z123" or "Z123"."""
    return text.rsplit("/", maxsplit=1)[-1]


def target_of(record: dict[str, Any]) -> str:
    """The name a record answers with: its alias target, else its first value (a CNAME's)."""
    if record.get("AliasTarget"):
        return fqdn(str(record["AliasTarget"]["DNSName"]))
    values = [v["Value"] for v in record.get("ResourceRecords", [])]
    return fqdn(str(values[0])) if values else ""


@dataclass(frozen=True)
class FailoverPair:
    """The failover records under one name: the region (PRIMARY) and its partner (SECONDARY)."""

    name: str
    primary: dict[str, Any] | None
    secondary: dict[str, Any] | None

    def problem(self) -> str | None:
        """What makes this name not a failover pair, or None."""
        missing = [role for role, record in (("PRIMARY", self.primary), ("SECONDARY", self.secondary))
                   if record is None]
        return f"{self.name} holds no {' or '.join(missing)} failover record" if missing else None


def failover_pair(route53: Any, zone_id: str, name: str) -> FailoverPair:
    """The failover records named `name` (a latency record's in-zone alias target)."""
    return split_pair(name, records_at(route53, zone_id, name))


def split_pair(name: str, records: list[dict[str, Any]]) -> FailoverPair:
    """The failover pair among the records listed under `name`."""
    by_role = {str(r.get("Failover")): r for r in records if r.get("Failover")}
    return FailoverPair(name=fqdn(name), primary=by_role.get("PRIMARY"), secondary=by_role.get("SECONDARY"))
