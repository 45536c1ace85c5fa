"""SLOs: one list of figure names for the deployment file and the command line, the same rules for
both, and a game day judged only on the figures it measures."""

from __future__ import annotations

import copy

import pytest

from gameday.deployment import parse_deployment
from gameday.errors import UsageError
from gameday.measure.slo import effective_slos, parse_overrides, violations_of_measured
from gameday.records import FIGURES
from tests.unit.test_config import GOOD


def minimal(**changes: object) -> dict:
    return {**copy.deepcopy(GOOD), **changes}


def test_every_figure_is_accepted_by_the_file_and_the_command_line() -> None:
    for name in FIGURES:
        dep = parse_deployment(minimal(slo={name: 5}))
        assert dep.slo[name] == 5.0 and getattr(dep.slo, name) == 5.0
        assert parse_overrides([f"{name}=5"], env={}) == {name: 5.0}


@pytest.mark.parametrize(("arg", "expected"), [
    ("client_outage_s=-5", "--slo: client_outage_s: expected a number >= 0, got '-5'"),
    ("client_outage_s=ten", "--slo: client_outage_s: expected a number >= 0, got 'ten'"),
    ("client_outage_s=nan", "--slo: client_outage_s: expected a number >= 0, got 'nan'"),
    ("nonsense_s=5", "--slo: unknown figure 'nonsense_s'"),
    ("=5", "--slo: expected NAME=MAX"),
    ("detection_s", "--slo: expected NAME=MAX"),
])
def test_bad_command_line_slos_are_refused_as_the_file_refuses_them(arg: str, expected: str) -> None:
    with pytest.raises(UsageError) as bad:
        parse_overrides([arg], env={})
    assert str(bad.value).startswith(expected) and "\n" not in str(bad.value)


def test_the_environment_is_under_the_command_line() -> None:
    got = parse_overrides(["detection_s=10"], env={"GAMEDAY_SLO": "detection_s=99, failback_s=50"})
    assert got == {"detection_s": 10.0, "failback_s": 50.0}
    with pytest.raises(UsageError, match=r"^GAMEDAY_SLO: "):
        parse_overrides([], env={"GAMEDAY_SLO": "detection_s=-1"})


def test_the_file_refuses_a_negative_slo_naming_the_field() -> None:
    with pytest.raises(UsageError, match=r"slo\.errors: expected a number >= 0"):
        parse_deployment(minimal(slo={"errors": -1}))


def test_a_game_day_is_judged_on_the_figures_it_measured() -> None:
    dep = parse_deployment(minimal(slo={"detection_s": 60, "client_outage_s": 10}))
    slos = effective_slos(dep, {"detection_s": 20})
    assert slos == {"detection_s": 20.0, "client_outage_s": 10.0}
    # a failover without load measures detection (0.3 s at scale 0.01 = 30 AWS-s) but no client outage
    violations = violations_of_measured({"detection_s": 0.3, "dns_shift_s": 0.31}, slos, time_scale=0.01)
    assert [v.message for v in violations] == ["detection_s: 0.3 (30 AWS-equivalent) is over the maximum 20"]
    # a figure it measures but could not (None) is a violation, never a pass
    (missing,) = violations_of_measured({"detection_s": None}, slos, time_scale=0.01)
    assert missing.message == "detection_s: not measured (SLO max 20)"
