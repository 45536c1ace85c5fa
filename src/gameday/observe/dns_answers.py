"""DNS answers for the global domain: Route 53's TestDNSAnswer, or any resolver, and
waits until an answer excludes/includes a region.

Why two sources: TestDNSAnswer says what Route 53 would answer right now (no TTL
caching: it shows the routing decision); a resolver query shows what a client gets.
Both are reduced to a list of strings and mapped to regions the same way.
"""

from __future__ import annotations

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

    def __init__(self, route53: Any, hosted_zone_id: str, record_name: str, record_type: str = "CNAME") -> None:
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

    @classmethod
    def for_deployment(cls, route53: Any, deployment: Deployment, record_type: str = "CNAME") -> TestDNSAnswer:
        return cls(route53, deployment.hosted_zone_id, deployment.domain, record_type)


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


def region_of_answer(deployment: Deployment, value: str) -> str | None:
    """Which region an answer names: the region's API host (`api_host`, or any
    `*.execute-api.{region}.amazonaws.com`), or an address equal to the host of its api_url
    or its client address. None if unknown."""
    text = value.strip().rstrip(".").lower()
    for region in deployment.regions:
        if region.api_host and text == region.api_host.rstrip(".").lower():
            return region.name
    for region in deployment.regions:
        if f".execute-api.{region.name}.amazonaws.com" in f".{text}":
            return region.name
    for region in deployment.regions:
        if text in (region.api_url_host.lower(), (region.client_address or "").lower()):
            return region.name
    return None


def regions_in(deployment: Deployment, answers: list[str]) -> list[str | None]:
    return [region_of_answer(deployment, a) for a in answers]


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
    """Until a non-empty answer names no record of `region` (the DNS shift away from it)."""
    return wait_until_answer(
        fetch, lambda answers: bool(answers) and region not in regions_in(deployment, answers),
        budget_s, poll_s, describe=f"answer without {region}", deployment=deployment)


def wait_until_includes(fetch: Fetch, deployment: Deployment, region: str, budget_s: float,
                        poll_s: float) -> AnswerWait:
    """Until the answer names `region` (failback)."""
    return wait_until_answer(
        fetch, lambda answers: region in regions_in(deployment, answers),
        budget_s, poll_s, describe=f"answer with {region}", deployment=deployment)


def dns_shift_budget(detection_budget_s: float, deployment: Deployment, through_resolver: bool) -> float:
    """Detection budget plus, for a caching resolver, one scaled TTL."""
    extra = deployment.record_ttl_s * deployment.time_scale if through_resolver else 0.0
    return detection_budget_s + extra
