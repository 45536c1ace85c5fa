"""Guardrails as the deployment description states them: parsed with field paths, and refusing
targets and moments outside them with one line naming the guardrail."""

from __future__ import annotations

import datetime as dt

import pytest

from gameday.deployment import _Validator
from gameday.errors import UsageError
from gameday.safety.guardrails import GuardrailRefused, parse_guardrails

V = _Validator("deployment.yaml")
REGIONS = ("eu-west-1", "us-east-1", "us-west-2")


def parse(raw):
    return parse_guardrails(V, raw, known_regions=REGIONS)


def test_no_guardrails_allow_everything() -> None:
    rails = parse(None)
    rails.check_targets([("eu-west-1", "anything", None)])
    rails.check_account("000000000000")


def test_targets_outside_the_guardrails_are_refused_naming_the_guardrail() -> None:
    rails = parse({"account_id": "123456789012", "allowed_regions": ["eu-west-1"],
                   "allowed_functions": ["gameday-Health", "arn:aws:lambda:eu-west-1:123456789012:function:ops-*"]})
    rails.check_targets([("eu-west-1", "gameday-Health", None)])
    rails.check_function("eu-west-1", "ops-Canary", "arn:aws:lambda:eu-west-1:123456789012:function:ops-Canary")
    cases = [
        (lambda: rails.check_account("999999999999"), "account_id"),
        (lambda: rails.check_function("us-east-1", "gameday-Health"), "allowed_regions"),
        (lambda: rails.check_function("eu-west-1", "gameday-PutItem"), "allowed_functions"),
    ]
    for call, guardrail in cases:
        with pytest.raises(GuardrailRefused) as refused:
            call()
        assert refused.value.guardrail == guardrail
        assert str(refused.value).startswith(f"guardrail {guardrail}: ") and "\n" not in str(refused.value)
        assert refused.value.exit_code == 3


@pytest.mark.parametrize(("when", "allowed"), [
    ("2026-12-01T09:00", True),    # Tuesday, at the start
    ("2026-12-01T16:59", True),
    ("2026-12-01T17:00", False),   # the end is excluded
    ("2026-12-05T10:00", False),   # Saturday
    ("2026-12-01T08:59", False),
])
def test_the_window_is_utc_hours_on_allowed_days(when: str, allowed: bool) -> None:
    rails = parse({"window": {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}})
    moment = dt.datetime.fromisoformat(when).replace(tzinfo=dt.UTC)
    if allowed:
        rails.check_window(moment)
    else:
        with pytest.raises(GuardrailRefused, match="^guardrail window: .* outside the allowed window"):
            rails.check_window(moment)


def test_a_window_past_midnight_belongs_to_the_day_it_starts() -> None:
    rails = parse({"window": {"days": ["fri"], "start": "22:00", "end": "02:00"}})
    rails.check_window(dt.datetime(2026, 12, 4, 23, 0, tzinfo=dt.UTC))      # Friday night
    rails.check_window(dt.datetime(2026, 12, 5, 1, 0, tzinfo=dt.UTC))       # Saturday small hours
    with pytest.raises(GuardrailRefused):
        rails.check_window(dt.datetime(2026, 12, 6, 1, 0, tzinfo=dt.UTC))   # Sunday small hours: Saturday's


@pytest.mark.parametrize(("raw", "field"), [
    ({"account_id": "12345"}, "guardrails.account_id"),
    ({"allowed_regions": ["xx-fake-9"]}, "guardrails.allowed_regions[0]"),
    ({"allowed_regions": []}, "guardrails.allowed_regions"),
    ({"allowed_functions": [""]}, "guardrails.allowed_functions[0]"),
    ({"max_fault_s": 0}, "guardrails.max_fault_s"),
    ({"max_fault_s": "ten"}, "guardrails.max_fault_s"),
    ({"window": {"start": "9am"}}, "guardrails.window.start"),
    ({"window": {"days": ["funday"]}}, "guardrails.window.days[0]"),
    ({"window": {"start": "10:00", "end": "10:00"}}, "guardrails.window.end"),
    ({"stop_conditions": {"alarms": ["my-alarm"]}}, "guardrails.stop_conditions.alarms[0]"),
    ({"stop_conditions": {"error_rate": {"max": 2}}}, "guardrails.stop_conditions.error_rate.max"),
    ({"stop_conditions": {"error_rate": {"window_s": 5}}}, "guardrails.stop_conditions.error_rate.max"),
    ({"stop_conditions": {"error_rate": {"max": 0.1, "min_requests": 0}}},
     "guardrails.stop_conditions.error_rate.min_requests"),
    ({"stop_conditions": {"stop_fil": "/x"}}, "guardrails.stop_conditions.stop_fil"),
    ({"max_fault": 10}, "guardrails.max_fault"),
])
def test_bad_guardrails_are_one_line_naming_the_field(raw: dict, field: str) -> None:
    with pytest.raises(UsageError) as bad:
        parse(raw)
    message = str(bad.value)
    assert message.startswith(f"deployment.yaml: {field}: ") and "\n" not in message, message


def test_stop_conditions_are_parsed() -> None:
    rails = parse({"max_fault_s": 300, "stop_conditions": {
        "alarms": ["arn:aws:cloudwatch:eu-west-1:123456789012:alarm:api-5xx"],
        "error_rate": {"max": 0.05, "window_s": 30}, "stop_file": "/tmp/STOP"}})
    stop = rails.stop_conditions
    assert rails.max_fault_s == 300 and stop.any
    assert (stop.alarms[0].region, stop.alarms[0].name) == ("eu-west-1", "api-5xx")
    assert (stop.error_rate.max, stop.error_rate.window_s, stop.error_rate.min_requests) == (0.05, 30, 20)
