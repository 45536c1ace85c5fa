"""The status rebuilt from the checkers' CheckedTime sequences: FailureThreshold per checker, then
the 18% rule; unseen results are named."""

from __future__ import annotations

from gameday.observe.route53 import CheckerSequences, Observation

INTERVAL = 10.0


def poll(t_by_checker: dict[int, tuple[float, bool]]) -> list[Observation]:
    return [Observation("us-east-1", f"10.0.0.{i}", "Success: ok" if ok else "Failure: 404", str(t), ok, t)
            for i, (t, ok) in t_by_checker.items()]


def test_status_flips_after_threshold_results_per_checker_and_the_18_percent_rule() -> None:
    seq = CheckerSequences(healthy=False, threshold=3, interval_s=INTERVAL)
    checkers = range(16)
    seq.add(poll({i: (i * 0.5, True) for i in checkers}))                   # steady: success
    for k in (1, 2):                                                         # two failures each
        seq.add(poll({i: (k * INTERVAL + i * 0.5, False) for i in checkers}))
        assert seq.declared(16) is None, "every observation fails, but no checker has 3 in a row yet"
    assert seq.first_change() == INTERVAL
    # third failures: the status changes when 14 of 16 (more than 82%) have flipped: checker 13's.
    seq.add(poll({i: (3 * INTERVAL + i * 0.5, False) for i in checkers}))
    assert seq.declared(16) == 3 * INTERVAL + 13 * 0.5
    assert seq.missed == 0


def test_a_success_in_between_restarts_the_count() -> None:
    seq = CheckerSequences(healthy=False, threshold=3, interval_s=INTERVAL)
    for k, ok in enumerate([False, False, True, False, False]):
        seq.add(poll({0: (k * INTERVAL, ok)}))
    assert seq.declared(1) is None
    seq.add(poll({0: (5 * INTERVAL, False)}))
    assert seq.declared(1) == 5 * INTERVAL


def test_recovery_needs_more_than_18_percent_with_threshold_successes() -> None:
    two = CheckerSequences(healthy=True, threshold=2, interval_s=INTERVAL)
    for k in range(3):
        two.add(poll({i: (k * INTERVAL + i, True) for i in range(2)}))
    assert two.declared(16) is None, "2 of 16 checkers healthy is 12.5%: not more than 18%"
    three = CheckerSequences(healthy=True, threshold=2, interval_s=INTERVAL)
    three.add(poll({i: (0.0 + i, True) for i in range(3)}))
    assert three.declared(16) is None, "one success each is not FailureThreshold successes"
    three.add(poll({i: (INTERVAL + i, True) for i in range(3)}))
    assert three.declared(16) == INTERVAL + 2          # the third checker's second success: 3/16 > 18%


def test_a_wide_poll_gap_names_the_results_it_may_have_hidden() -> None:
    seq = CheckerSequences(healthy=False, threshold=3, interval_s=INTERVAL)
    seq.add(poll({0: (0.0, True), 1: (1.0, True)}))
    seq.add(poll({0: (20.0, False), 1: (12.0, False)}), since_last_poll_s=21.0)   # 0 may have probed at 10
    assert seq.missed == 1
    seq.add(poll({0: (30.0, False), 1: (22.0, False)}), since_last_poll_s=5.0)
    assert seq.missed == 1


def test_the_checkers_pace_comes_from_gaps_no_wide_poll_could_hide_a_result_in() -> None:
    seq = CheckerSequences(healthy=False, threshold=3, interval_s=INTERVAL)
    seq.add(poll({i: (i * 0.5, True) for i in range(4)}))
    seq.add(poll({i: (25.0 + i * 0.5, True) for i in range(4)}), since_last_poll_s=2.0)
    assert seq.pace_s() is None, "four honest gaps are too few to trust"
    seq.add(poll({i: (50.0 + i * 0.5, False) for i in range(4)}), since_last_poll_s=2.0)
    assert seq.pace_s() == 25.0, "every checker probed every 25 s, not every 10 s"
    late = CheckerSequences(healthy=False, threshold=3, interval_s=INTERVAL)
    late.add(poll({i: (i * 0.5, True) for i in range(8)}))
    for k in (1, 2):   # a poll 30 s after the last one may have hidden results: those gaps say nothing
        late.add(poll({i: (k * 30.0 + i * 0.5, False) for i in range(8)}), since_last_poll_s=30.0)
    assert late.pace_s() is None
