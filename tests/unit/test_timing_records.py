"""The measured poll, the poll interval, the run record and the category map, without any cloud."""

from __future__ import annotations

import itertools
import threading

import pytest

from gameday import timing
from gameday.errors import VERDICTS, Category, FaultNotEffective, ScenarioError, ScenarioFailed, categorised
from gameday.records import RunRecord


def test_measured_poll_reports_what_it_measured():
    count = itertools.count()
    poll = timing.measured_poll(lambda: next(count), until=lambda n: n >= 3, poll_s=0.01, budget_s=5.0)
    assert poll.reached and poll.value == 3 and poll.attempts == 4
    assert poll.poll_s == 0.01 and poll.max_gap_s >= 0.01 and poll.elapsed_s >= 0.03
    assert poll.reached_at is not None and poll.reached_at >= poll.started_at


def test_measured_poll_stops_at_its_budget_without_raising():
    poll = timing.measured_poll(lambda: False, poll_s=0.01, budget_s=0.05)
    assert not poll.reached and poll.reached_at is None and poll.elapsed_s < 1.0 and poll.attempts >= 2


def test_measured_poll_polls_through_named_errors_only():
    def refused() -> int:
        raise ConnectionError("refused")

    poll = timing.measured_poll(refused, poll_s=0.01, budget_s=0.05, retry_on=(ConnectionError,))
    assert not poll.reached and isinstance(poll.error, ConnectionError) and poll.value is None
    with pytest.raises(ConnectionError):
        timing.measured_poll(refused, poll_s=0.01, budget_s=0.05)


def test_measured_poll_stops_when_its_event_is_set():
    stop = threading.Event()
    seen: list[int] = []

    def look() -> bool:
        seen.append(1)
        if len(seen) == 3:
            stop.set()
        return False

    poll = timing.measured_poll(look, poll_s=0.01, budget_s=None, stop_event=stop)
    assert not poll.reached and poll.attempts == 3


def test_poll_interval_is_a_fifth_of_the_scaled_check_interval_within_floor_and_cap():
    assert timing.poll_interval_for(10, 1.0) == timing.POLL_CAP_S       # AWS: one-second resolution
    assert timing.poll_interval_for(10, 0.01) == timing.POLL_FLOOR_S    # local cloud at scale 0.01
    assert timing.poll_interval_for(10, 0.25) == pytest.approx(0.5)
    assert timing.scaled(60, 0.01, floor_s=5.0) == 5.0 and timing.scaled(10, 0.5, slack_s=1.0) == 6.0


def test_run_record_phases_marks_and_verdict():
    run = RunRecord(scenario="s", failed_region="eu-west-1")
    with run.phase("steady state") as entry:
        entry["budget_s"] = 1.0
        entry.update(health="16/16")
    with pytest.raises(FaultNotEffective):
        with run.phase("inject"):
            raise FaultNotEffective("still 200")
    assert run.get("steady state").status == "succeeded" and run.phases[0]["budget_s"] == 1.0
    assert run.phases[1].status == "failed" and run.phases[1]["outcome"] == "failed"
    fault = run.mark("fault", 10.0)
    assert run.since("fault", 12.5) == 2.5 and fault == 10.0
    assert run.verdict == "pass"
    run.fail(Category.WRONG_REGION, "first")
    run.fail(Category.LOST_WRITES, "second")
    assert run.verdict == "fail" and run.category is Category.WRONG_REGION and run.message == "first"


def test_a_row_read_back_is_the_same_record():
    run = RunRecord(scenario="s", failed_region="eu-west-1", figures={"acked_writes": 3}, marks={"fault": 1.0})
    with run.phase("p"):
        pass
    run.emit("fault_injected", t=1.0, region="eu-west-1", fault="flip_health")
    from gameday.report.summary import summary_row

    row = summary_row(run)
    again = summary_row(RunRecord.from_row(row))
    assert again == row and row["acked_writes"] == 3 and row["verdict"] == "pass"


def test_every_category_has_one_verdict_and_errors_carry_theirs():
    assert set(VERDICTS) == set(Category)
    assert [c for c, v in VERDICTS.items() if v.status == "broken"] == [Category.HARNESS_ERROR]
    failed = ScenarioFailed(Category.NO_DNS_SHIFT, "still answers eu-west-1")
    assert isinstance(failed, AssertionError) and str(failed) == "[no_dns_shift] still answers eu-west-1"
    assert ScenarioError("x").category is Category.HARNESS_ERROR
    assert categorised("lost_writes", "2 missing") == "[lost_writes] 2 missing"
    with pytest.raises(ValueError, match="unknown failure category"):
        Category.parse("bad_luck")
