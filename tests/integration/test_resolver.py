"""gameday.observe.resolver against a real DNS server on loopback (dnslib, switchable CNAME -> A answer)."""

from __future__ import annotations

import time

import pytest
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from gameday.errors import UsageError
from gameday.observe.resolver import DnsResolutionError, Resolver, parse_nameserver
from tests.support.loopback_servers import DOMAIN, REGION_NAMES, TIME_SCALE, WIRE_TTL, host_of

CACHE_S = WIRE_TTL * TIME_SCALE  # 0.6 s
A, B = REGION_NAMES


def test_follows_the_cname_to_the_address_and_reports_the_wire_ttl(dns_zone, regions):
    resolver = Resolver(dns_zone.resolver_spec, time_scale=TIME_SCALE)
    answer = resolver.resolve(DOMAIN)
    assert answer.addresses == (regions[A].address,)
    assert answer.ttl == WIRE_TTL  # unscaled on the wire
    assert answer.cnames == (host_of(A),)
    assert not answer.from_cache


def test_cname_only_answer_is_followed_with_a_second_query(dns_zone, regions):
    dns_zone.zone.cname_only = True
    dns_zone.zone.ttl = 30
    answer = Resolver(dns_zone.resolver_spec, time_scale=TIME_SCALE, cache=False).resolve(DOMAIN)
    assert answer.addresses == (regions[A].address,)
    assert answer.ttl == 30
    assert dns_zone.zone.asked(host_of(A).lower()) == 1


def test_answer_is_cached_for_ttl_times_time_scale_then_the_change_is_seen(dns_zone, regions):
    resolver = Resolver(dns_zone.resolver_spec, time_scale=TIME_SCALE)
    t_first = time.monotonic()  # before the query: the entry expires at least CACHE_S after this
    first = resolver.resolve(DOMAIN)
    dns_zone.zone.switch(B)
    cached = resolver.resolve(DOMAIN)
    assert cached.from_cache and cached.addresses == (regions[A].address,)
    assert dns_zone.zone.asked() == 1

    poll = Retrying(stop=stop_after_delay(CACHE_S + 5), wait=wait_fixed(0.01),
                    retry=retry_if_result(lambda r: r.addresses != (regions[B].address,)))
    poll(resolver.resolve, DOMAIN)
    waited = time.monotonic() - t_first
    assert waited >= CACHE_S, f"the cached answer was dropped after {waited:.3f} s < {CACHE_S} s"
    assert waited <= CACHE_S + 2.0
    assert CACHE_S <= first.expires_at - t_first <= CACHE_S + 0.5


def test_each_record_of_the_chain_is_kept_for_its_own_ttl(dns_zone, regions):
    """A CNAME with a long TTL pins its target: when the target's short-lived A record expires the
    client asks for the target again, not for the name, and follows a switch only once the CNAME
    itself expires (as a recursive resolver does)."""
    dns_zone.zone.cname_ttl = WIRE_TTL * 5
    cname_cache_s = WIRE_TTL * 5 * TIME_SCALE    # 3.0 s; the A record: 0.6 s
    resolver = Resolver(dns_zone.resolver_spec, time_scale=TIME_SCALE)
    t_first = time.monotonic()
    first = resolver.resolve(DOMAIN)
    assert first.ttl == WIRE_TTL and first.addresses == (regions[A].address,)
    dns_zone.zone.switch(B)

    poll = Retrying(stop=stop_after_delay(cname_cache_s + 5), wait=wait_fixed(0.01),
                    retry=retry_if_result(lambda r: r.addresses != (regions[B].address,)))
    seen: list = []
    poll(lambda: seen.append(resolver.resolve(DOMAIN)) or seen[-1])
    waited = time.monotonic() - t_first
    assert waited >= cname_cache_s, f"the CNAME was dropped after {waited:.3f} s < {cname_cache_s} s"
    assert waited <= cname_cache_s + 2.0
    pinned = [r for r in seen if r.addresses == (regions[A].address,)]
    assert any(not r.from_cache for r in pinned), "the A record was never asked again within the CNAME's TTL"
    assert dns_zone.zone.asked(host_of(A).lower()) >= 1       # the target's A record, asked on its own
    assert dns_zone.zone.asked() == 2                          # the name: first, and once the CNAME expired


def test_no_cache_mode_sees_the_change_at_once(dns_zone, regions):
    resolver = Resolver(dns_zone.resolver_spec, time_scale=TIME_SCALE, cache=False)
    assert resolver.resolve(DOMAIN).addresses == (regions[A].address,)
    dns_zone.zone.switch(B)
    assert resolver.resolve(DOMAIN).addresses == (regions[B].address,)
    assert dns_zone.zone.asked() == 2
    assert resolver.mode == "no-cache"


def test_cache_is_kept_per_client_region_and_sends_the_client_subnet(dns_zone, regions):
    resolver = Resolver(dns_zone.resolver_spec, time_scale=TIME_SCALE,
                        client_addresses={A: "127.0.0.11", B: "127.0.0.12"})
    resolver.resolve(DOMAIN, region=A)
    resolver.resolve(DOMAIN, region=B)
    resolver.resolve(DOMAIN, region=A)
    resolver.resolve(DOMAIN)
    subnets = [ecs for name, ecs in dns_zone.zone.queries if name == DOMAIN]
    assert subnets == ["127.0.0.11/32", "127.0.0.12/32", None]
    with pytest.raises(UsageError, match="no client_address"):
        resolver.resolve(DOMAIN, region="ap-south-1")


def test_servfail_is_retried_and_nxdomain_is_not(dns_zone, regions):
    resolver = Resolver(dns_zone.resolver_spec, time_scale=TIME_SCALE, cache=False, attempts=3)
    dns_zone.zone.servfail_next = 2
    assert resolver.resolve(DOMAIN).addresses == (regions[A].address,)
    before = resolver.queries_sent
    with pytest.raises(DnsResolutionError, match="NXDOMAIN"):
        resolver.resolve("nothing.gameday.test")
    assert resolver.queries_sent == before + 1


def test_a_silent_server_gives_up_after_the_attempts(dns_zone):
    import socket

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        resolver = Resolver(f"127.0.0.1:{silent.getsockname()[1]}", timeout_s=0.1, attempts=2)
        started = time.monotonic()
        with pytest.raises(DnsResolutionError, match="no answer .* 2 attempts"):
            resolver.resolve(DOMAIN)
        assert time.monotonic() - started < 3.0
        assert resolver.queries_sent == 2
    finally:
        silent.close()


def test_nameserver_specs():
    assert parse_nameserver("127.0.0.1:5353") == [("127.0.0.1", 5353)]
    assert parse_nameserver("10.0.0.2") == [("10.0.0.2", 53)]
    for bad in ("", "127.0.0.1:port", "127.0.0.1:70000"):
        with pytest.raises(UsageError, match="dns_resolver"):
            parse_nameserver(bad)


def test_from_deployment_uses_attribute_access(dns_zone):
    class Region:
        def __init__(self, name, client_address):
            self.name, self.client_address = name, client_address

    class Dep:
        dns_resolver = dns_zone.resolver_spec
        time_scale = TIME_SCALE
        regions = [Region(A, "127.0.0.11"), Region(B, None)]

    resolver = Resolver.from_deployment(Dep(), cache=False)
    assert resolver.time_scale == TIME_SCALE and not resolver.cache_enabled
    assert resolver.client_addresses == {A: "127.0.0.11"}
