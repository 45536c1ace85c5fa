"""gameday.load.traffic against a real DNS server and two real HTTP servers on loopback.

Margins are lenient (the servers share this process and 2 cores with the client): the
schedule is deterministic (slot k is due at k / rate), so counts are exact and rates
are checked within 15%.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from gameday.errors import UsageError
from gameday.load.traffic import Traffic
from gameday.safety.stop_conditions import RequestWindow, hurts_users
from tests.support.loopback_servers import DOMAIN, REGION_NAMES, TIME_SCALE, WIRE_TTL

CACHE_S = WIRE_TTL * TIME_SCALE
A, B = REGION_NAMES
EVENT_KEYS = {"t_start", "t_end", "op", "ok", "status", "latency_s", "region", "item_id", "error"}


def _traffic(dns_zone, regions, **kwargs):
    return Traffic.for_url(f"http://{DOMAIN}:{regions.port}", dns_zone.resolver_spec, time_scale=TIME_SCALE,
                           timeout=(0.5, 2.0), region_of_address=regions.region_of_address, **kwargs)


def _until_done(traffic, budget_s):
    Retrying(stop=stop_after_delay(budget_s), wait=wait_fixed(0.05), retry=retry_if_result(bool))(
        lambda: traffic.running)


def test_hits_the_rate_records_every_request_and_tracks_acked_writes(dns_zone, regions):
    rate, duration = 150.0, 2.0
    traffic = _traffic(dns_zone, regions, rate=rate, duration_s=duration, threads=8, write_ratio=0.5)
    traffic.start()
    _until_done(traffic, duration + 10)
    events = traffic.events()
    progress = traffic.progress()

    assert len(events) == progress.sent == int(rate * duration) - progress.skipped_slots
    assert progress.skipped_slots == 0
    assert all(set(e) >= EVENT_KEYS for e in events)
    assert all(e["ok"] and e["region"] == A and e["error"] is None for e in events)
    starts = sorted(e["t_start"] for e in events)
    achieved = (len(starts) - 1) / (starts[-1] - starts[0])
    assert achieved == pytest.approx(rate, rel=0.15)
    assert progress.in_flight == 0 and progress.elapsed_s >= duration * 0.99  # frozen when the run ended
    assert starts[-1] - starts[0] == pytest.approx(duration, abs=0.3)  # spread over the run, not bursts

    puts = [e for e in events if e["op"] == "put"]
    assert len(puts) >= rate * duration / 2  # reads before the first ack become writes
    acked = traffic.acked_ids()
    assert sorted(acked) == sorted(e["item_id"] for e in puts)
    assert len(set(acked)) == len(acked)  # ids unique in the run
    assert set(acked) <= regions[A].items
    assert all(e["status"] == 200 for e in events if e["op"] == "get")  # reads ask for acked ids only
    assert traffic.acked() == {i: A for i in acked}


def test_follows_the_dns_change_after_the_cache_expires(dns_zone, regions):
    with _traffic(dns_zone, regions, rate=100.0, threads=4) as traffic:
        Retrying(stop=stop_after_delay(5), wait=wait_fixed(0.02), retry=retry_if_result(lambda n: n < 20))(
            lambda: traffic.progress().sent)
        switched = time.time()
        dns_zone.zone.switch(B)
        Retrying(stop=stop_after_delay(CACHE_S + 5), wait=wait_fixed(0.02),
                 retry=retry_if_result(lambda p: p.by_region.get(B, 0) < 20))(traffic.progress)
    events = traffic.events()
    first_b = min(e["t_start"] for e in events if e["region"] == B)
    last_a = max(e["t_start"] for e in events if e["region"] == A)
    # The client's cache was filled before the switch, so it keeps A for at most one cache period.
    assert first_b - switched <= CACHE_S + 1.5
    assert last_a < first_b + 0.3  # once re-resolved, new requests go to B (margin: a thread preempted mid-request)
    # The two test servers do not replicate: in B, reads of ids acked by A are 404s; nothing else failed.
    assert all(e["ok"] or (e["op"], e["status"], e["region"]) == ("get", 404, B) for e in events)
    assert dns_zone.zone.asked() <= 2 + (events[-1]["t_end"] - events[0]["t_start"]) / CACHE_S + 1


def test_no_cache_mode_follows_the_dns_change_at_once(dns_zone, regions):
    with _traffic(dns_zone, regions, rate=100.0, threads=4, dns_mode="no-cache") as traffic:
        Retrying(stop=stop_after_delay(5), wait=wait_fixed(0.02), retry=retry_if_result(lambda n: n < 10))(
            lambda: traffic.progress().sent)
        switched = time.time()
        dns_zone.zone.switch(B)
        Retrying(stop=stop_after_delay(5), wait=wait_fixed(0.02),
                 retry=retry_if_result(lambda p: p.by_region.get(B, 0) < 10))(traffic.progress)
    events = traffic.events()
    assert all(e["region"] == B for e in events if e["t_start"] > switched + 0.05)
    assert traffic.dns_mode == "no-cache"


def test_failures_are_recorded_with_status_error_and_address(dns_zone, regions):
    with _traffic(dns_zone, regions, rate=100.0, threads=4) as traffic:
        Retrying(stop=stop_after_delay(5), wait=wait_fixed(0.02), retry=retry_if_result(lambda n: n < 10))(
            lambda: traffic.progress().acked_writes)
        regions[A].status_override = 500
        Retrying(stop=stop_after_delay(5), wait=wait_fixed(0.02), retry=retry_if_result(lambda n: n < 10))(
            lambda: traffic.progress().failed)
        regions.stop_region(A)
        Retrying(stop=stop_after_delay(5), wait=wait_fixed(0.02), retry=retry_if_result(lambda n: n < 10))(
            lambda: sum(1 for e in traffic.events() if e["status"] is None))
    events = traffic.events()
    forced = [e for e in events if e["status"] == 500]
    assert forced and all(not e["ok"] and e["error"] == "HTTP 500" and e["region"] == A for e in forced)
    refused = [e for e in events if e["status"] is None]
    # no answer at all, yet the address it was sent to names the region
    assert refused and all(not e["ok"] and e["error"] and e["region"] == A and e["address"] == regions[A].address
                           for e in refused)
    acked = set(traffic.acked_ids())
    assert acked == {e["item_id"] for e in events if e["op"] == "put" and e["ok"]}
    assert acked <= regions[A].items
    assert traffic.progress().failed == sum(1 for e in events if not e["ok"])


def test_every_request_is_reported_to_the_observer_as_it_ends(dns_zone, regions):
    reported: list[tuple[float, int | None, str | None]] = []
    window = RequestWindow(3600.0)     # longer than the test: every request stays in it

    def observe(t_end: float, status: int | None, error: str | None) -> None:
        reported.append((t_end, status, error))      # list.append is atomic: safe from the workers
        window.add(t_end, status, error)

    def wait_reported(predicate) -> None:
        Retrying(stop=stop_after_delay(5), wait=wait_fixed(0.02), retry=retry_if_result(lambda n: n < 10))(
            lambda: sum(1 for r in list(reported) if predicate(r)))

    with _traffic(dns_zone, regions, rate=100.0, threads=4, on_request=observe) as traffic:
        wait_reported(lambda r: r[1] == 200)
        regions[A].status_override = 404           # the request's own fault: not counted against the backend
        wait_reported(lambda r: r[1] == 404)
        regions[A].status_override = 500
        wait_reported(lambda r: r[1] == 500)
        regions.stop_region(A)                     # no answer at all
        wait_reported(lambda r: r[1] is None)
    events = traffic.events()
    assert sorted(reported) == sorted((e["t_end"], e["status"], e["error"]) for e in events)
    counted_failed = sum(1 for e in events if e["status"] is None or e["status"] >= 500)
    assert window.counts(now=max(e["t_end"] for e in events)) == (len(events), counted_failed)
    assert all(hurts_users(status) == (status is None or status == 500) for _, status, _ in reported)
    assert window.last_error is not None and "HTTP" not in window.last_error   # the refused connection, last


def test_an_observer_that_raises_does_not_stop_the_traffic(dns_zone, regions):
    def broken(*_: object) -> None:
        raise RuntimeError("observer bug")

    traffic = _traffic(dns_zone, regions, rate=100.0, duration_s=0.5, threads=2, on_request=broken)
    traffic.start()
    _until_done(traffic, 10)
    assert traffic.progress().sent == 50 - traffic.progress().skipped_slots
    assert all(e["ok"] for e in traffic.events())


def test_stop_ends_a_run_without_duration_and_unrecorded_mode_keeps_counters(dns_zone, regions):
    traffic = _traffic(dns_zone, regions, rate=100.0, threads=2, record=False, write_ratio=1.0,
                       id_base=5_000_000)
    traffic.start()
    Retrying(stop=stop_after_delay(5), wait=wait_fixed(0.02), retry=retry_if_result(lambda n: n < 10))(
        lambda: traffic.progress().sent)
    traffic.stop()
    assert not traffic.running
    assert traffic.events() == []
    acked = traffic.acked_ids()
    assert len(acked) == traffic.progress().sent
    assert sorted(acked) == list(range(5_000_000, 5_000_000 + len(acked)))  # base + counter


def test_two_runs_never_share_ids(dns_zone, regions):
    first, second = _traffic(dns_zone, regions), _traffic(dns_zone, regions)
    assert abs(first.id_base - second.id_base) >= 2 ** 24
    assert first.id_base + 2 ** 24 < 2 ** 53


def test_bad_settings_are_usage_errors(dns_zone, regions):
    for bad in ({"rate": 0}, {"write_ratio": 1.5}, {"threads": 0}, {"duration_s": -1}, {"dns_mode": "x"}):
        with pytest.raises(UsageError):
            _traffic(dns_zone, regions, **bad)


def test_from_deployment(dns_zone, regions):
    dep = SimpleNamespace(global_url=f"http://{DOMAIN}:{regions.port}", dns_resolver=dns_zone.resolver_spec,
                          time_scale=TIME_SCALE,
                          regions=[SimpleNamespace(name=A, client_address="127.0.0.11")])
    traffic = Traffic.from_deployment(dep, region=A, rate=50.0, duration_s=0.2)
    traffic.start()
    _until_done(traffic, 5)
    assert traffic.events() and all(e["address"] == regions[A].address for e in traffic.events())
    assert dns_zone.zone.queries[0] == (DOMAIN, "127.0.0.11/32")
