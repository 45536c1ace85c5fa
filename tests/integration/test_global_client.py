"""gameday.load.global_client against a real DNS server and two real HTTP servers on loopback."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from gameday.errors import UsageError
from gameday.load.global_client import GlobalClient, GlobalRequestError
from gameday.observe.resolver import Resolver
from tests.support.loopback_servers import DOMAIN, REGION_NAMES, TIME_SCALE, WIRE_TTL

CACHE_S = WIRE_TTL * TIME_SCALE
A, B = REGION_NAMES


@pytest.fixture
def make_client(dns_zone, regions):
    made = []

    def make(cache=True, **kwargs):
        resolver = Resolver(dns_zone.resolver_spec, time_scale=TIME_SCALE, cache=cache)
        kwargs.setdefault("region_of_address", regions.region_of_address)
        client = GlobalClient(f"http://{DOMAIN}:{regions.port}", resolver, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def test_connects_to_the_resolved_address_sending_the_domain_as_host(make_client, regions):
    client = make_client()
    answer = client.post("/item", json={"id": 7, "name": "x"})
    assert answer.status == 200 and answer.ok
    assert answer.address == regions[A].address
    assert answer.region == A and answer.served_by == A
    assert regions[A].hosts == [DOMAIN]
    assert 7 in regions[A].items
    assert client.get("/item/7").json() == {"id": 7}


def test_keeps_one_connection_alive_per_address(make_client, regions):
    client = make_client()
    for _ in range(20):
        assert client.get("/item/1").status == 404  # any status is an answer
    assert regions[A].requests == 20
    assert regions[A].connections == 1


def test_follows_the_dns_change_only_after_the_cache_expires(make_client, dns_zone, regions):
    client = make_client()
    t0 = time.monotonic()
    assert client.get("/item/1").address == regions[A].address
    dns_zone.zone.switch(B)
    assert client.get("/item/1").address == regions[A].address  # still cached

    poll = Retrying(stop=stop_after_delay(CACHE_S + 5), wait=wait_fixed(0.01),
                    retry=retry_if_result(lambda r: r.address != regions[B].address))
    answer = poll(client.get, "/item/1")
    waited = time.monotonic() - t0
    assert CACHE_S <= waited <= CACHE_S + 2.0
    assert answer.region == B
    assert regions[B].hosts and set(regions[B].hosts) == {DOMAIN}
    assert regions[B].connections == 1


def test_no_cache_mode_follows_the_dns_change_at_once(make_client, dns_zone, regions):
    client = make_client(cache=False)
    assert client.get("/item/1").region == A
    dns_zone.zone.switch(B)
    assert client.get("/item/1").region == B


def test_an_error_status_is_returned_and_no_response_raises(make_client, regions):
    client = make_client(timeout=(0.5, 2.0))
    regions[A].status_override = 500
    answer = client.post("/item", json={"id": 8, "name": "x"})
    assert answer.status == 500 and not answer.ok and answer.region == A
    regions.stop_region(A)
    with pytest.raises(GlobalRequestError) as caught:
        client.get("/item/8")
    assert caught.value.address == regions[A].address


def test_dns_failure_is_a_request_error(dns_zone, regions):
    resolver = Resolver(dns_zone.resolver_spec, time_scale=TIME_SCALE)
    with GlobalClient(f"http://nothing.gameday.test:{regions.port}", resolver) as client:
        with pytest.raises(GlobalRequestError, match="NXDOMAIN") as caught:
            client.get("/health")
    assert caught.value.address is None


def test_base_path_and_bad_urls(dns_zone, regions):
    resolver = Resolver(dns_zone.resolver_spec, time_scale=TIME_SCALE)
    with GlobalClient(f"http://{DOMAIN}:{regions.port}/prod/", resolver) as client:
        assert client.url("/item/3") == f"http://{DOMAIN}:{regions.port}/prod/item/3"
        assert client.post("item", json={"id": 3, "name": "x"}).status == 200
    with pytest.raises(UsageError, match=r"expected http\(s\)://"):
        GlobalClient("ftp://x", resolver)
    with pytest.raises(UsageError, match="no client_address"):
        GlobalClient(f"http://{DOMAIN}:{regions.port}", resolver, region="ap-south-1")


def test_from_deployment_builds_its_resolver(dns_zone, regions):
    dep = SimpleNamespace(global_url=f"http://{DOMAIN}:{regions.port}", dns_resolver=dns_zone.resolver_spec,
                          time_scale=TIME_SCALE, regions=[])
    with GlobalClient.from_deployment(dep, dns_mode="no-cache") as client:
        assert client.resolver.mode == "no-cache"
        assert client.get("/item/1").address == regions[A].address
    with pytest.raises(UsageError, match="dns_mode"):
        GlobalClient.from_deployment(dep, dns_mode="sometimes")


def test_a_region_header_is_corroboration_only(make_client, regions):
    """A handler that claims another region does not move the request: the address names who served it."""
    regions[A].claims = B
    try:
        answer = make_client().get("/item/1")
    finally:
        regions[A].claims = None
    assert answer.address == regions[A].address
    assert answer.region == A and answer.header_region == B
