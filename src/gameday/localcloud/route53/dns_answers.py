"""What Route 53 answers for a name: the hosted zones' records evaluated with health.

One evaluation serves TestDNSAnswer, the DNS server and the checkers' name resolution,
so all three always agree. Rules, as Route 53 documents them:
- failover: primary healthy -> primary; else secondary if healthy or without a check;
  both unhealthy -> primary;
- latency: the healthy record of the client's region (else the nearest healthy one, in
  ctx.regions order); every record unhealthy -> all treated healthy ("fail open");
- weighted / multivalue: healthy records (fail open); simple records as they are;
- CNAME chains are followed inside the zones and to names in ctx.names; an alias with
  EvaluateTargetHealth is as healthy as its target's group (at least one healthy record);
Records a `dns_answer` truth event whenever the answer for a routed name changes
(per client region for latency records).
"""

from __future__ import annotations

import ipaddress
import random
import threading
from dataclasses import dataclass, field
from typing import Any

from gameday.localcloud.motoglue import access as moto_access
from gameday.localcloud.process.context import CloudContext
from gameday.localcloud.route53.health_checkers import HealthCheckerFleet

MAX_CHAIN = 8
DEFAULT_NAME_TTL = 60   # TTL for names from ctx.names (API hosts answer with 60 s on AWS too)
DEFAULT_ECS_MASK = 24        # TestDNSAnswer's default for IPv4 ...
DEFAULT_ECS_MASK_V6 = 64     # ... and for IPv6


@dataclass(frozen=True)
class Rr:
    name: str
    rtype: str
    ttl: int
    value: str


@dataclass
class Evaluation:
    rcode: str                          # NOERROR | NXDOMAIN | REFUSED
    records: list[Rr] = field(default_factory=list)   # answer section: first hop, then the chain
    zone: Any = None                    # moto FakeZone when the name is in a hosted zone
    chosen: list[Any] = field(default_factory=list)   # record sets chosen at the first hop

    def first_hop(self) -> list[Rr]:
        if not self.records:
            return []
        first = self.records[0].name
        return [r for r in self.records if r.name == first]

    def addresses(self) -> list[str]:
        return [r.value for r in self.records if r.rtype == "A"]


def norm(name: str) -> str:
    return name.rstrip(".").lower()


def record_values(rs: Any) -> list[str]:
    """moto stores API values as strings, but its own SOA as {"Value": ...} dicts."""
    out = []
    for value in rs.records or []:
        out.append(str(value["Value"]) if isinstance(value, dict) else str(value))
    return out


def record_ttl(rs: Any) -> int:
    try:
        return int(rs.ttl)
    except (TypeError, ValueError):
        return DEFAULT_NAME_TTL


class DnsAnswers:
    def __init__(self, ctx: CloudContext, fleet: HealthCheckerFleet, seed: int | None = None) -> None:
        self._ctx = ctx
        self._fleet = fleet
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str | None], list[str]] = {}
        fleet.set_resolver(self.resolve_address)

    def start(self) -> None:
        self._fleet.add_listener(lambda _hc, _healthy: self.refresh())
        self._fleet.add_tick_listener(self.refresh)
        self.refresh()

    def stop(self) -> None:
        pass   # no thread of its own: runs in the callers' threads

    # ---- client location --------------------------------------------------------------------
    def client_region(self, ip: str | None, mask: int | None = None) -> str | None:
        """The region a client is "in"; None when its location is unknown (or ambiguous).

        Without a mask (a query's source address) the address itself is located: a region's
        data-plane address or an address in its client network. With a mask (an EDNS0 client
        subnet) only the first `mask` bits count, as Route 53 reads it (RFC 7871): the subnet is
        the region's when it lies inside one region's client network, or when exactly one
        region's located networks lie inside it. In the HTTP/CNAME shape a subnet that names a
        region's data-plane address exactly is that region's whatever its mask (that shape has no
        client networks, and the harness relies on it)."""
        if not ip:
            return None
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        if mask is None or not self._ctx.settings.tls:
            for spec in self._ctx.regions:
                if spec.address == str(addr):
                    return spec.name
        bits = addr.max_prefixlen if mask is None else max(0, min(int(mask), addr.max_prefixlen))
        subnet = ipaddress.ip_network(f"{addr}/{bits}", strict=False)
        located: list[tuple[Any, str]] = []
        for spec in self._ctx.regions:
            region_addr = ipaddress.ip_address(spec.address)
            located.append((ipaddress.ip_network(f"{region_addr}/{region_addr.max_prefixlen}"), spec.name))
            if spec.client_network:
                located.append((ipaddress.ip_network(spec.client_network, strict=False), spec.name))
        same = [(net, name) for net, name in located if net.version == subnet.version]
        around = {name for net, name in same if subnet.subnet_of(net)}     # the subnet lies in a region
        if len(around) == 1:
            return around.pop()
        if around:
            return None
        inside = {name for net, name in same if net.subnet_of(subnet)}     # regions lie in the subnet
        return inside.pop() if len(inside) == 1 else None

    # ---- evaluation -------------------------------------------------------------------------
    def zone_for(self, name: str) -> Any:
        key = norm(name)
        best = None
        for zone in list(moto_access.route53().zones.values()):
            zname = norm(zone.name)
            if key == zname or key.endswith("." + zname):
                if best is None or len(zname) > len(norm(best.name)):
                    best = zone
        return best

    def evaluate(self, name: str, rtype: str = "A", client_region: str | None = None,
                 _depth: int = 0) -> Evaluation:
        key, rtype = norm(name), rtype.upper()
        zone = self.zone_for(key)
        if zone is None:
            address = self._ctx.names.lookup(key)
            if address is None:
                return Evaluation("REFUSED")
            if rtype in ("A", "ANY"):
                return Evaluation("NOERROR", [Rr(key, "A", DEFAULT_NAME_TTL, address)])
            return Evaluation("NOERROR")
        sets = [rs for rs in list(zone.rrsets) if norm(rs.name) == key]
        if not sets:
            below = any(norm(rs.name).endswith("." + key) for rs in list(zone.rrsets))
            return Evaluation("NOERROR" if below else "NXDOMAIN", zone=zone)
        if rtype == "ANY":   # every type at the name, each chosen by its own routing policy
            merged = Evaluation("NOERROR", zone=zone)
            for each in dict.fromkeys(str(rs.type).upper() for rs in sets):
                part = self.evaluate(key, each, client_region, _depth + 1)
                merged.records.extend(r for r in part.records if r.name == key and r not in merged.records)
                merged.chosen.extend(part.chosen)
            return merged
        typed = [rs for rs in sets if str(rs.type).upper() == rtype]
        if not typed and rtype != "CNAME":
            typed = [rs for rs in sets if str(rs.type).upper() == "CNAME"]
        if not typed:
            return Evaluation("NOERROR", zone=zone)
        chosen = self._select(typed, client_region)
        out = Evaluation("NOERROR", zone=zone, chosen=chosen)
        for rs in chosen:
            if rs.alias_target:
                # An alias answers with the target's records under the alias's own name and type,
                # and the target's TTL: no CNAME, nothing that names the target.
                target = norm(rs.alias_target.get("DNSName", ""))
                alias_type = str(rs.type).upper()
                sub = self.evaluate(target, alias_type, client_region, _depth + 1) if _depth < MAX_CHAIN else None
                for rr in (sub.records if sub else []):
                    if rr.rtype == alias_type:
                        out.records.append(Rr(key, alias_type, rr.ttl, rr.value))
                continue
            for value in record_values(rs):
                out.records.append(Rr(key, str(rs.type).upper(), record_ttl(rs), value))
        cnames = [r for r in out.records if r.rtype == "CNAME" and r.name == key]
        if cnames and rtype != "CNAME" and _depth < MAX_CHAIN:
            sub = self.evaluate(cnames[0].value, rtype, client_region, _depth + 1)
            if sub.rcode == "NOERROR":
                out.records.extend(sub.records)
        return out

    def resolve_address(self, name: str, client_region: str | None = None) -> str | None:
        """An A answer for a host name, as a checker in `client_region` would get it."""
        if client_region not in {s.name for s in self._ctx.regions}:
            client_region = None
        addresses = self.evaluate(name, "A", client_region).addresses()
        return addresses[0] if addresses else None

    def _healthy(self, rs: Any, _depth: int = 0) -> bool:
        """A record's health: its health check's status (none: healthy), and for an alias with
        EvaluateTargetHealth also its target's: a target in the zones is healthy when at least one
        record of its group is (so a latency record aliasing a failover pair is unhealthy only when
        both records of the pair are); an AWS resource outside them (API Gateway's regional domain)
        counts as healthy."""
        if rs.health_check_id and not self._fleet.status(rs.health_check_id):
            return False
        target = rs.alias_target or {}
        if str(target.get("EvaluateTargetHealth", "")).lower() != "true" or _depth >= MAX_CHAIN:
            return True
        name = norm(target.get("DNSName", ""))
        zone = self.zone_for(name)
        if zone is None:
            return True
        group = [s for s in list(zone.rrsets)
                 if norm(s.name) == name and str(s.type).upper() == str(rs.type).upper()]
        return any(self._healthy(s, _depth + 1) for s in group)

    def _select(self, sets: list[Any], client_region: str | None) -> list[Any]:
        if any(rs.failover for rs in sets):
            primary = [rs for rs in sets if str(rs.failover).upper() == "PRIMARY"]
            secondary = [rs for rs in sets if str(rs.failover).upper() == "SECONDARY"]
            if primary and self._healthy(primary[0]):
                return primary[:1]
            if secondary and self._healthy(secondary[0]):
                return secondary[:1]
            return (primary or secondary)[:1]
        if any(rs.region for rs in sets):
            healthy = [rs for rs in sets if self._healthy(rs)] or list(sets)   # fail open
            order = [s.name for s in self._ctx.regions]
            wanted = client_region or (order[0] if order else None)
            for rs in healthy:
                if rs.region == wanted:
                    return [rs]
            healthy.sort(key=lambda rs: order.index(rs.region) if rs.region in order else len(order))
            return healthy[:1]
        if any(rs.weight is not None for rs in sets):
            healthy = [rs for rs in sets if self._healthy(rs) and int(rs.weight or 0) > 0]
            pool = healthy or [rs for rs in sets if int(rs.weight or 0) > 0] or list(sets)
            weights = [max(int(rs.weight or 0), 0) or 1 for rs in pool]
            return [self._rng.choices(pool, weights=weights)[0]]
        if any(rs.multi_value_answer for rs in sets):
            return ([rs for rs in sets if self._healthy(rs)] or list(sets))[:8]
        return sets

    # ---- TestDNSAnswer ----------------------------------------------------------------------
    def test_dns_answer(self, zone: Any, name: str, rtype: str, *, resolver_ip: str | None,
                        ecs_ip: str | None, ecs_mask: int | None) -> dict[str, Any]:
        """AWS's TestDNSAnswer response: the first hop of what Route 53 answers for the record."""
        if ecs_ip:
            default = DEFAULT_ECS_MASK if ipaddress.ip_address(ecs_ip).version == 4 else DEFAULT_ECS_MASK_V6
            region = self.client_region(ecs_ip, default if ecs_mask is None else ecs_mask)
        else:
            region = self.client_region(resolver_ip)
        ev = self.evaluate(name, rtype, region)
        nameservers = [v for rs in list(zone.rrsets) if str(rs.type).upper() == "NS"
                       and norm(rs.name) == norm(zone.name) for v in record_values(rs)]
        return {
            "Nameserver": nameservers[0] if nameservers else "ns-2048.awsdns-64.com",
            "RecordName": name if name.endswith(".") else name + ".",
            "RecordType": rtype,
            "RecordData": [rr.value for rr in ev.first_hop()],
            "ResponseCode": ev.rcode,
            "Protocol": "UDP",
        }

    # ---- ground truth -----------------------------------------------------------------------
    def routed_names(self) -> list[tuple[str, bool]]:
        """(name, is_latency) for every name whose records have a routing policy."""
        found: dict[str, bool] = {}
        for zone in list(moto_access.route53().zones.values()):
            for rs in list(zone.rrsets):
                if rs.failover or rs.region or rs.weight is not None or rs.multi_value_answer:
                    key = norm(rs.name)
                    found[key] = found.get(key, False) or bool(rs.region)
        return sorted(found.items())

    def refresh(self) -> None:
        """Re-evaluate every routed name; record a dns_answer event where the answer changed."""
        with self._lock:
            for name, is_latency in self.routed_names():
                clients: list[str | None] = [s.name for s in self._ctx.regions] if is_latency else [None]
                for client in clients:
                    ev = self.evaluate(name, "A", client)
                    answers = [rr.value for rr in ev.records]
                    if self._last.get((name, client)) == answers:
                        continue
                    self._last[(name, client)] = answers
                    addresses = ev.addresses()
                    region = self._ctx.region_of_address(addresses[-1]) if addresses else None
                    self._ctx.truth.record("dns_answer", name=name, client_region=client, answers=answers,
                                           region=region,
                                           set_identifier=ev.chosen[0].set_identifier if ev.chosen else None)

    def current(self) -> dict[str, list[str]]:
        """The latest answers per routed name (and client region), for the control endpoint."""
        with self._lock:
            return {f"{name}|{client or '-'}": list(answers) for (name, client), answers in self._last.items()}
