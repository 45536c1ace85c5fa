"""DNS answers for the global domain: Route 53's TestDNSAnswer, or any resolver, and
waits until an answer excludes/includes a region.

Why two sources: TestDNSAnswer says what Route 53 would answer right now (no TTL
caching: it shows the routing decision); a resolver query shows what a client gets.
Both are reduced to a list of strings and mapped to regions the same way.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gameday import timing
from gameday.deployment import Deployment
from gameday.errors import Category, ScenarioError

Fetch = Callable[[], list[str]]


class DnsShiftTimeout(ScenarioError):
    """The answer did not change as expected within the budget."""

    category = Category.NO_DNS_SHIFT

    def __init__(self, message: str, *, last: list[str] | None, history: list[AnswerPoll]) -> None:
        super().__init__(message)
        self.last = last
        self.history = history


@dataclass
class AnswerPoll:
    t: float
    elapsed_s: float
    answers: list[str]
    regions: list[str | None]


@dataclass
class AnswerWait:
    elapsed_s: float
    reached_at: float
    started_at: float
    budget_s: float
    answers: list[str]
    history: list[AnswerPoll] = field(default_factory=list)
    max_gap_s: float = 0.0


class TestDNSAnswer:
    """route53.test_dns_answer for one record -> its RecordData."""

    __test__ = False  # not a pytest test class, despite the AWS API's name

    def __init__(self, route53: Any, hosted_zone_id: str, record_name: str, record_type: str = "A") -> None:
        self.route53 = route53
        self.hosted_zone_id = hosted_zone_id
        self.record_name = record_name
        self.record_type = record_type

    def answer(self, client_subnet: str | None = None, resolver_ip: str | None = None,
               subnet_mask: int | None = None) -> list[str]:
        kwargs: dict[str, Any] = {"HostedZoneId": self.hosted_zone_id, "RecordName": self.record_name,
                                  "RecordType": self.record_type}
        if resolver_ip:
            kwargs["ResolverIP"] = resolver_ip
        if client_subnet:
            kwargs["EDNS0ClientSubnetIP"] = client_subnet
            if subnet_mask is not None:
                kwargs["EDNS0ClientSubnetMask"] = str(subnet_mask)
        response = self.route53.test_dns_answer(**kwargs)
        return [str(data) for data in response.get("RecordData", [])]

    def fetcher(self, client_subnet: str | None = None) -> Fetch:
        return lambda: self.answer(client_subnet=client_subnet)

    def fetcher_with_mask(self, client_subnet: str | None, mask: int | None) -> Fetch:
        return lambda: self.answer(client_subnet=client_subnet, subnet_mask=mask)

    def fetcher_for_client_in(self, region: Any) -> Fetch:
        """The answer for a client in `region` (a deployment Region): see `client_subnet_of`."""
        subnet, mask = client_subnet_of(region)
        return self.fetcher_with_mask(subnet, mask)

    @classmethod
    def for_deployment(cls, route53: Any, deployment: Deployment, record_type: str | None = None) -> TestDNSAnswer:
        """For the domain's records; their type is read from the zone (alias records are A, the
        usual way to point a domain at API Gateway; a CNAME record is asked as a CNAME)."""
        return cls(route53, deployment.hosted_zone_id, deployment.domain,
                   record_type or _record_type(route53, deployment))


def client_subnet_of(region: Any) -> tuple[str | None, int | None]:
    """(EDNS0ClientSubnetIP, EDNS0ClientSubnetMask) that stand for a client in `region`: its
    `client_network` when the description names one (the network's address and its own prefix:
    latency routing decides per network, and AWS assumes /24 when the mask is left out), else its
    `client_address` with AWS's default mask; (None, None) when neither is known."""
    network = getattr(region, "client_network", None)
    if network:
        parsed = ipaddress.ip_network(network, strict=False)
        return str(parsed.network_address), parsed.prefixlen
    return getattr(region, "client_address", None), None


def _record_type(route53: Any, deployment: Deployment) -> str:
    name = deployment.domain.rstrip(".").lower()
    try:
        page = route53.list_resource_record_sets(HostedZoneId=deployment.hosted_zone_id,
                                                 StartRecordName=name, MaxItems="10")
    except Exception as exc:  # noqa: BLE001 - the type is a refinement; A is what alias records are
        code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")
        if code in {"AccessDenied", "AccessDeniedException"}:
            raise   # a missing permission is the operator's to fix, never papered over
        return "A"
    types = {r.get("Type") for r in page.get("ResourceRecordSets", [])
             if str(r.get("Name", "")).rstrip(".").lower() == name}
    return "CNAME" if types == {"CNAME"} else "A"


def resolver_fetcher(resolver: Any, name: str, region: str | None = None, cached: bool = True) -> Fetch:
    """A resolver query as a Fetch (gameday.observe.resolver.Resolver): the CNAME chain followed, then
    the addresses. `cached=True` is what a TTL-honouring client in `region` sees
    (`resolve`); False asks the server every time (`query`, the routing decision now)."""

    def fetch() -> list[str]:
        if cached:
            resolution = resolver.resolve(name, region=region)
        else:
            resolution = resolver.query(name, client_address=resolver.client_address_for(region))
        return list(resolution.cnames) + list(resolution.addresses)

    return fetch


class UnmappedAnswer(ScenarioError):
    """No DNS answer for the domain names a region: nothing the harness sees could tell a
    failover from no change at all, so no check built on it can be trusted."""

    category = Category.STEADY_STATE


@dataclass
class RegionMap:
    """What DNS answers for each region, as seen when it is built (steady state): the addresses
    its regional domain name and API host resolve to, and those names (CNAME targets, where an
    answer has any). A value two regions share names neither."""

    names: dict[str, str] = field(default_factory=dict)       # lower-case host name -> region
    addresses: dict[str, str] = field(default_factory=dict)   # address -> region
    ambiguous: set[str] = field(default_factory=set)
    lookups: dict[str, list[str]] = field(default_factory=dict)  # name -> what it resolved to, for evidence

    def add(self, table: dict[str, str], key: str, region: str) -> None:
        key = key.strip().rstrip(".").lower()
        if not key or key in self.ambiguous:
            return
        if table.get(key, region) != region:
            self.ambiguous.add(key)
            del table[key]
            return
        table[key] = region

    def region_of(self, value: str) -> str | None:
        text = value.strip().rstrip(".").lower()
        return self.addresses.get(text) or self.names.get(text)

    def public(self) -> dict[str, Any]:
        return {"addresses": dict(self.addresses), "names": dict(self.names), "ambiguous": sorted(self.ambiguous),
                "lookups": dict(self.lookups)}


def build_region_map(deployment: Deployment, resolver: Any) -> RegionMap:
    """Ask DNS what each region's own names resolve to (uncached): the regional domain name (an
    alias record's target), the API host, and the host of api_url; an address in api_url is its
    own answer. A name DNS does not know is skipped (the old local shape has no records for it)."""
    from gameday.observe.resolver import DnsResolutionError

    found = RegionMap()
    for region in deployment.regions:
        hosts = [h for h in (region.regional_domain_name, region.api_host, region.api_url_host) if h]
        for host in dict.fromkeys(h.rstrip(".").lower() for h in hosts):
            found.add(found.names, host, region.name)
            try:
                resolution = resolver.query(host)
            except DnsResolutionError as exc:
                found.lookups[host] = [f"unresolved: {exc.reason}"]
                continue
            found.lookups[host] = list(resolution.cnames) + list(resolution.addresses)
            for cname in resolution.cnames:
                found.add(found.names, cname, region.name)
            for address in resolution.addresses:
                found.add(found.addresses, address, region.name)
    for key in found.ambiguous:
        found.names.pop(key, None)
        found.addresses.pop(key, None)
    return found


_MAPS: dict[Deployment, RegionMap] = {}
_MAPS_LOCK = threading.Lock()


def region_map(deployment: Deployment, resolver: Any = None, *, refresh: bool = False) -> RegionMap:
    """The deployment's region map: built on first use (or again with `refresh`, as every steady
    state does), then shared by every answer and response of the process."""
    with _MAPS_LOCK:
        known = _MAPS.get(deployment)
        if known is not None and not refresh:
            return known
        if resolver is None:
            from gameday.observe.resolver import Resolver

            resolver = Resolver.from_deployment(deployment, cache=False)
        built = build_region_map(deployment, resolver)
        _MAPS[deployment] = built
        return built


def region_of_answer(deployment: Deployment, value: str) -> str | None:
    """Which region a DNS answer names, from the region map (its addresses and host names), or
    a CNAME target under `execute-api.{region}.amazonaws.com`. None if unknown."""
    found = region_map(deployment).region_of(value)
    if found is not None:
        return found
    text = value.strip().rstrip(".").lower()
    for region in deployment.regions:
        if f".execute-api.{region.name}.amazonaws.com" in f".{text}":
            return region.name
    return None


def region_of_address(deployment: Deployment, address: str, *, resolver: Any = None) -> str | None:
    """The region whose DNS names resolve to `address` (where a request went names who served it)."""
    return region_map(deployment, resolver).addresses.get(address.strip().lower())


def regions_in(deployment: Deployment, answers: list[str]) -> list[str | None]:
    return [region_of_answer(deployment, a) for a in answers]


def mapped_regions(deployment: Deployment, answers: list[str], *, what: str = "the answer") -> list[str]:
    """The regions `answers` name; UnmappedAnswer unless every answer names one (steady state:
    a check built on an answer the harness cannot place would pass without seeing anything)."""
    regions = regions_in(deployment, answers)
    if not answers or any(r is None for r in regions):
        known = region_map(deployment)
        raise UnmappedAnswer(
            f"steady state: {what} for {deployment.domain} is {answers or 'empty'}, and "
            f"{'not every' if any(regions) else 'no'} answer maps to a region (what DNS answers for each region: "
            f"{known.lookups or 'nothing'})")
    return [r for r in regions if r is not None]


def all_mapped(deployment: Deployment, answers: list[str]) -> bool:
    """A non-empty answer in which every value names a region."""
    regions = regions_in(deployment, answers)
    return bool(answers) and all(r is not None for r in regions)


def wait_until_answer(fetch: Fetch, predicate: Callable[[list[str]], bool], budget_s: float, poll_s: float, *,
                      describe: str = "answer", deployment: Deployment | None = None) -> AnswerWait:
    """Poll `fetch` until `predicate(answers)` holds; DnsShiftTimeout with the history if not in budget."""
    history: list[AnswerPoll] = []
    started = time.monotonic()

    def poll() -> list[str]:
        answers = fetch()
        regions = regions_in(deployment, answers) if deployment else []
        history.append(AnswerPoll(time.time(), time.monotonic() - started, answers, regions))
        return answers

    wait = timing.measured_poll(poll, until=predicate, poll_s=poll_s, budget_s=budget_s)
    if not wait.reached or wait.value is None:
        last = history[-1].answers if history else None
        raise DnsShiftTimeout(f"DNS {describe} not reached within {budget_s:.2f} s (last answer: {last})",
                              last=last, history=history)
    reached = history[-1]
    return AnswerWait(elapsed_s=reached.elapsed_s, reached_at=reached.t, started_at=wait.started_at,
                      budget_s=budget_s, answers=wait.value, history=history, max_gap_s=wait.max_gap_s)


def wait_until_excludes(fetch: Fetch, deployment: Deployment, region: str, budget_s: float,
                        poll_s: float) -> AnswerWait:
    """Until a non-empty answer, every value of which names a region, names `region` no more (the
    DNS shift away from it). An answer the harness cannot place is not a shift."""
    return wait_until_answer(
        fetch, lambda answers: all_mapped(deployment, answers) and region not in regions_in(deployment, answers),
        budget_s, poll_s, describe=f"answer without {region}", deployment=deployment)


def wait_until_includes(fetch: Fetch, deployment: Deployment, region: str, budget_s: float,
                        poll_s: float) -> AnswerWait:
    """Until the answer names `region` (failback)."""
    return wait_until_answer(
        fetch, lambda answers: region in regions_in(deployment, answers),
        budget_s, poll_s, describe=f"answer with {region}", deployment=deployment)
