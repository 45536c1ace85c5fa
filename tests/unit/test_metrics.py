"""gameday.measure.metrics on crafted event lists (times in exact binary fractions so edges are exact)."""

from __future__ import annotations

import dataclasses
import random

import pytest

from gameday.errors import UsageError
from gameday.measure import metrics


def ev(t, *, ok=True, op="put", region="eu-west-1", latency=0.01, item_id=0, status=None):
    return {"t_start": t, "t_end": t + latency, "op": op, "ok": ok, "status": status or (200 if ok else 500),
            "latency_s": latency, "region": region, "item_id": item_id, "error": None if ok else "HTTP 500"}


def steady(start, end, step=0.125, **kwargs):
    """One event every `step` seconds in [start, end)."""
    n = int(round((end - start) / step))
    return [ev(start + i * step, **kwargs) for i in range(n)]


# -- marks ----------------------------------------------------------------------------------------------
def test_detection_and_dns_shift_from_marks():
    marks = {"fault": 100.0, "detected": 130.5, "dns_shift": 160.25}
    assert metrics.detection_s(marks) == 30.5
    assert metrics.dns_shift_s(marks) == 60.25
    assert metrics.detection_s({"fault": 1.0}) is None
    assert metrics.dns_shift_s({}) is None


def test_aws_seconds():
    assert metrics.aws_seconds(0.3, 0.01) == pytest.approx(30.0)
    assert metrics.aws_seconds(None, 0.01) is None
    assert metrics.aws_seconds(5.0, 1.0) == 5.0
    with pytest.raises(UsageError):
        metrics.aws_seconds(1.0, 0)
    eq = metrics.aws_equivalents({"client_outage_s": 0.9, "errors": 3, "failback_s": None}, 0.01)
    assert eq == {"client_outage_s": pytest.approx(90.0), "failback_s": None}


# -- client outage ---------------------------------------------------------------------------------------
def test_outage_runs_from_first_failure_to_last_failure_of_the_bad_period():
    events = steady(0, 5) + steady(5, 7, ok=False) + steady(7, 12)
    outage = metrics.client_outage(events, fault_t=4.0, window_s=0.5, max_error_rate=0.05)
    assert outage.start == 5.0
    assert outage.end == pytest.approx(7 - 0.125 + 0.01)  # t_end of the last failed request
    assert outage.duration_s == pytest.approx(2 - 0.125 + 0.01)
    assert outage.errors == 16 and outage.requests == 16
    assert outage.recovered


def test_failures_before_the_fault_and_stray_failures_after_recovery_do_not_count():
    events = steady(0, 12)
    for e in events:
        if 1.0 <= e["t_start"] < 1.5 or 5.0 <= e["t_start"] < 6.0:
            e["ok"] = False
    stray = [ev(9.0 + k / 64, ok=(k != 0)) for k in range(1)]  # one failure among many successes
    events += stray + [ev(9.0 + k / 256) for k in range(1, 256)]
    outage = metrics.client_outage(events, fault_t=4.0, window_s=1.0, max_error_rate=0.05)
    assert outage.start == 5.0
    assert outage.end == pytest.approx(6 - 0.125 + 0.01)
    assert outage.errors == 8


def test_window_is_half_open_at_its_end():
    # Events every 0.125 s; failures at 5.0 and 5.5; window 0.5 s holds 4 requests [t, t + 0.5).
    events = steady(0, 10)
    for e in events:
        e["ok"] = e["t_start"] not in (5.0, 5.5)
    # Each window holds at most one failure (25% < 30%): no bad window, the outage is the first failure alone.
    outage = metrics.client_outage(events, fault_t=1.0, window_s=0.5, max_error_rate=0.3)
    assert (outage.start, outage.end, outage.errors) == (5.0, pytest.approx(5.01), 1)
    # At 25% the same windows are bad; the last bad one starts at 5.5 and holds only the failure at 5.5.
    outage = metrics.client_outage(events, fault_t=1.0, window_s=0.5, max_error_rate=0.25)
    assert (outage.start, outage.end, outage.errors, outage.requests) == (5.0, pytest.approx(5.51), 2, 5)


def test_no_failure_means_no_outage():
    outage = metrics.client_outage(steady(0, 5), fault_t=1.0, window_s=0.5)
    assert outage.duration_s == 0.0 and outage.errors == 0 and outage.start is None and outage.recovered


def test_an_outage_lasting_to_the_end_of_the_record_is_not_recovered():
    events = steady(0, 5) + steady(5, 8, ok=False)
    outage = metrics.client_outage(events, fault_t=4.0, window_s=0.5)
    assert not outage.recovered and outage.end is None and outage.duration_s is None
    assert outage.start == 5.0 and outage.errors == 24


def test_outage_can_look_at_one_op_only():
    events = steady(0, 5) + [ev(5 + i / 8, ok=False, op="get") for i in range(8)] + steady(6, 8)
    assert metrics.client_outage(events, 4.0, window_s=0.5, ops={"put"}).errors == 0
    assert metrics.client_outage(events, 4.0, window_s=0.5, ops={"get"}).errors == 8


def test_bad_outage_settings():
    with pytest.raises(UsageError):
        metrics.client_outage([], 0.0, window_s=0)
    with pytest.raises(UsageError):
        metrics.client_outage([], 0.0, window_s=1, max_error_rate=0)


# -- latency -------------------------------------------------------------------------------------------------
def test_percentiles_are_nearest_rank():
    assert metrics.percentile(range(1, 101), 50) == 50
    assert metrics.percentile(range(1, 101), 99) == 99
    assert metrics.percentile([3.0], 99) == 3.0
    assert metrics.percentile([], 50) is None


def test_latency_before_during_after():
    before = [ev(i / 100, latency=(i + 1) / 1000) for i in range(100)]  # 1..100 ms
    during = [ev(2 + i / 100, latency=1.0 + i / 100) for i in range(100)]
    after = [ev(4 + i / 100, latency=0.005) for i in range(100)]
    phases = metrics.latency_by_phase(before + during + after, fault_t=2.0, during_end_t=4.0)
    assert phases["before"].p50_s == pytest.approx(0.050) and phases["before"].p99_s == pytest.approx(0.099)
    assert phases["during"].p50_s == pytest.approx(1.49) and phases["during"].n == 100
    assert phases["after"].p99_s == pytest.approx(0.005)
    assert metrics.latency_stats(before, ok_only=True).n == 100


# -- RPO ---------------------------------------------------------------------------------------------------
def test_rpo_is_zero_when_every_acked_write_is_everywhere():
    loss = metrics.rpo(range(1, 11), {"eu-west-1": set(range(0, 20)), "us-east-1": set(range(1, 11))})
    assert loss.lost_writes == 0 and loss.missing_ids == [] and loss.missing_by_region == {}


def test_rpo_lists_the_missing_ids_per_region():
    loss = metrics.rpo([1, 2, 3, 4, 5, 6, 7], {"eu-west-1": {1, 2, 3, 4, 5, 6, 7}, "us-east-1": {1, 2, 4, 5, 6},
                                                 "ap-south-1": {1, 2, 3, 4, 5, 6}})
    assert loss.lost_writes == 2
    assert loss.missing_ids == [3, 7]
    assert loss.missing_by_region == {"us-east-1": [3, 7], "ap-south-1": [7]}


# -- replication lag ----------------------------------------------------------------------------------------
def test_replication_lag_per_ordered_pair():
    samples = [("eu-west-1", "us-east-1", 100.0, 100.0 + k / 10) for k in range(1, 11)]
    samples += [{"source": "us-east-1", "target": "eu-west-1", "written_at": 5.0, "seen_at": 5.25}]
    lag = metrics.replication_lag(samples)
    forward = lag[("eu-west-1", "us-east-1")]
    assert forward.p50_s == pytest.approx(0.5) and forward.p99_s == pytest.approx(1.0) and forward.n == 10
    assert lag[("us-east-1", "eu-west-1")].p99_s == pytest.approx(0.25)
    assert metrics.overall_lag(samples).n == 11


# -- failback --------------------------------------------------------------------------------------------------
def test_failback_is_when_traffic_stays_with_the_restored_region():
    events = steady(0, 10, region="us-east-1")
    events += [ev(10.125, region="us-east-1"), ev(10.25, region="eu-west-1"), ev(10.375, region="us-east-1"),
               ev(10.5, region="eu-west-1"), ev(10.625, ok=False, region="us-east-1"), ev(10.75, region="eu-west-1")]
    assert metrics.failback_s(events, restore_t=10.0, region="eu-west-1") == pytest.approx(0.51)
    assert metrics.failback_s(events, restore_t=10.0, region={"eu-west-1", "127.0.0.11"}) == pytest.approx(0.51)
    assert metrics.failback_s(events, restore_t=10.0, region="ap-south-1") is None


# -- SLOs -------------------------------------------------------------------------------------------------------
def test_slo_violations_name_the_figure_the_value_and_the_limit():
    figures = {"client_outage_s": 0.9, "rpo_lost_writes": 2, "dns_shift_s": None, "acked_writes": 4000,
               "detection_s": 0.3}
    slos = {"client_outage_s": 60, "rpo_lost_writes": 0, "dns_shift_s": 100, "acked_writes": {"min": 5000},
            "detection_s": {"max": 45}}
    found = {v.figure: v for v in metrics.check_slos(figures, slos, time_scale=0.01)}
    assert set(found) == {"client_outage_s", "rpo_lost_writes", "dns_shift_s", "acked_writes"}
    outage = found["client_outage_s"]
    assert (outage.measured, outage.limit, outage.bound) == (0.9, 60, "max")
    assert outage.compared == pytest.approx(90.0)
    assert "client_outage_s: 0.9 (90 AWS-equivalent) is over the maximum 60" == outage.message
    assert found["rpo_lost_writes"].message == "rpo_lost_writes: 2 is over the maximum 0"
    assert found["dns_shift_s"].message == "dns_shift_s: not measured (SLO max 100)"
    assert found["acked_writes"].message == "acked_writes: 4000 is under the minimum 5000"
    assert metrics.check_slos(figures, {"detection_s": 45, "rpo_lost_writes": 2}, time_scale=0.01) == []


def test_slos_from_a_dataclass_skip_unset_figures():
    @dataclasses.dataclass
    class Slo:
        client_outage_s: float | None = None
        rpo_lost_writes: float | None = 0

    figures = {"client_outage_s": 5.0, "rpo_lost_writes": 1}
    assert [v.figure for v in metrics.check_slos(figures, Slo())] == ["rpo_lost_writes"]


def test_slo_naming_an_unknown_figure_or_a_bad_limit_is_a_usage_error():
    with pytest.raises(UsageError, match="slo.outage: unknown figure"):
        metrics.check_slos({"client_outage_s": 1.0}, {"outage": 5})
    with pytest.raises(UsageError, match="slo.client_outage_s"):
        metrics.check_slos({"client_outage_s": 1.0}, {"client_outage_s": "fast"})


# -- everything ------------------------------------------------------------------------------------------------
def test_summarize_gives_every_summary_figure():
    events = steady(0, 5, region="eu-west-1") + steady(5, 6, ok=False, region="eu-west-1")
    events += steady(6, 10, region="us-east-1") + steady(10, 12, region="eu-west-1")
    for i, e in enumerate(events):
        e["item_id"] = i
    marks = {"fault": 4.5, "detected": 4.8, "dns_shift": 5.9, "restore": 10.0, "recovered": 10.5}
    acked = [e["item_id"] for e in events if e["ok"]]
    present = {"eu-west-1": set(acked), "us-east-1": set(acked) - {3}}
    figures = metrics.summarize(events, marks, present=present, restored_region="eu-west-1",
                                lag_samples=[("eu-west-1", "us-east-1", 1.0, 1.5)], time_scale=0.01,
                                window_s=0.5)
    assert figures["acked_writes"] == len(acked)
    assert figures["rpo_lost_writes"] == 1 and figures["rpo_missing_ids"] == [3]
    assert figures["client_outage_s"] == pytest.approx(1 - 0.125 + 0.01) and figures["errors"] == 8
    assert figures["detection_s"] == pytest.approx(0.3) and figures["dns_shift_s"] == pytest.approx(1.4)
    assert figures["replication_lag_p50_s"] == figures["replication_lag_p99_s"] == 0.5
    assert figures["replication_lag"]["eu-west-1->us-east-1"]["n"] == 1
    assert figures["failback_s"] == pytest.approx(0.01)
    for phase in ("before", "during", "after"):
        assert figures[f"latency_{phase}_p99_s"] == pytest.approx(0.01)
    assert metrics.check_slos(figures, {"rpo_lost_writes": 0}) != []


def test_every_metric_over_100k_events():
    # How fast is a figure printed by bench/traffic.py, not an assertion here.
    rng = random.Random(7)
    events = []
    for i in range(100_000):
        t = 1000.0 + i / 300
        ok = not (1100.0 <= t < 1130.0) or rng.random() < 0.2
        events.append(ev(t, ok=ok, op="put" if i % 2 else "get", latency=rng.random() / 50, item_id=i,
                         region="eu-west-1" if t < 1120 or t > 1250 else "us-east-1"))
    marks = {"fault": 1095.0, "detected": 1110.0, "dns_shift": 1120.0, "restore": 1240.0, "recovered": 1260.0}
    acked = [e["item_id"] for e in events if e["ok"] and e["op"] == "put"]
    present = {"eu-west-1": set(acked), "us-east-1": set(acked[:-5])}
    lag = [("eu-west-1", "us-east-1", e["t_end"], e["t_end"] + 0.3) for e in events[:50_000]]
    figures = metrics.summarize(events, marks, acked_ids=acked, present=present, lag_samples=lag,
                                restored_region="eu-west-1", window_s=1.0)
    assert figures["rpo_lost_writes"] == 5
    assert figures["client_outage_s"] == pytest.approx(30.0, abs=0.1)
    assert figures["failback_s"] is not None
