"""Guardrails: the targets a deployment description allows a game day to fault, checked before any
change. A refused target is one line naming the guardrail, and its own exit status.

    guardrails:
      account_id: "123456789012"          # the credentials must resolve to this account
      allowed_regions: [eu-west-1, us-east-1]
      allowed_functions: [gameday-Health, gameday-PutItem]   # names or ARNs; fnmatch patterns
      max_fault_s: 600                    # AWS seconds a fault may stay in place (a hard cap)
      window: {days: [mon, tue, wed, thu, fri], start: "09:00", end: "17:00"}   # UTC
      stop_conditions:
        alarms: [arn:aws:cloudwatch:eu-west-1:123456789012:alarm:api-5xx]
        error_rate: {max: 0.05, window_s: 60, min_requests: 20}
        stop_file: /run/gameday/STOP
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gameday.errors import GamedayError, UsageError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_ALARM_ARN = re.compile(r"^arn:aws[\w-]*:cloudwatch:([a-z0-9-]+):(\d{12}):alarm:(.+)$")


class GuardrailRefused(GamedayError):
    """A target or a moment the guardrails do not allow: nothing was changed."""

    exit_code = 3

    def __init__(self, guardrail: str, message: str) -> None:
        self.guardrail = guardrail
        super().__init__(f"guardrail {guardrail}: {message}")


class Validator(Protocol):
    """The deployment description's validator (one-line errors that name the field path)."""

    def fail(self, path: str, expected: str, got: Any) -> None: ...
    def mapping(self, raw: Any, path: str, expected: str) -> dict[str, Any]: ...
    def known_keys(self, mapping: Mapping[str, Any], path: str, allowed: set[str]) -> None: ...
    def string(self, raw: Any, path: str) -> str: ...
    def number(self, raw: Any, path: str, expected: str) -> float: ...


@dataclass(frozen=True)
class Window:
    """Allowed hours, UTC: on `days`, from `start` to `end` (end before start runs past midnight)."""

    days: tuple[str, ...] = DAYS
    start: str = "00:00"
    end: str = "24:00"

    def allows(self, moment: dt.datetime) -> bool:
        moment = moment.astimezone(dt.UTC)
        minute = moment.hour * 60 + moment.minute
        start, end = _minutes(self.start), _minutes(self.end)
        if start <= end:
            return DAYS[moment.weekday()] in self.days and start <= minute < end
        if minute >= start:       # the evening part belongs to today
            return DAYS[moment.weekday()] in self.days
        if minute < end:          # the morning part belongs to the day before
            return DAYS[(moment.weekday() - 1) % 7] in self.days
        return False

    def describe(self) -> str:
        return f"{','.join(self.days)} {self.start}-{self.end} UTC"


@dataclass(frozen=True)
class AlarmRef:
    region: str
    name: str
    account_id: str | None = None


@dataclass(frozen=True)
class ErrorRate:
    """Stop when more than `max` of the game day's own requests fail over the last `window_s` AWS seconds
    (judged once at least `min_requests` were sent in that window)."""

    max: float
    window_s: float = 60.0
    min_requests: int = 20


@dataclass(frozen=True)
class StopConditions:
    alarms: tuple[AlarmRef, ...] = ()
    error_rate: ErrorRate | None = None
    stop_file: str | None = None

    @property
    def any(self) -> bool:
        return bool(self.alarms or self.error_rate or self.stop_file)


@dataclass(frozen=True)
class Guardrails:
    account_id: str | None = None
    allowed_regions: tuple[str, ...] | None = None
    allowed_functions: tuple[str, ...] | None = None
    max_fault_s: float | None = None
    window: Window | None = None
    stop_conditions: StopConditions = field(default_factory=StopConditions)

    def check_account(self, account_id: str) -> None:
        if self.account_id is not None and account_id != self.account_id:
            raise GuardrailRefused("account_id", f"the credentials resolve to account {account_id}, "
                                                 f"the deployment allows only {self.account_id}")

    def check_region(self, region: str) -> None:
        if self.allowed_regions is not None and region not in self.allowed_regions:
            raise GuardrailRefused("allowed_regions", f"{region} is not allowed (allowed: "
                                                      f"{', '.join(self.allowed_regions)})")

    def check_function(self, region: str, name: str, arn: str | None = None) -> None:
        self.check_region(region)
        if self.allowed_functions is None:
            return
        candidates = [name] + ([arn] if arn else [])
        if not any(fnmatch.fnmatchcase(c, pattern) for c in candidates for pattern in self.allowed_functions):
            raise GuardrailRefused("allowed_functions", f"{name} in {region} is not allowed (allowed: "
                                                        f"{', '.join(self.allowed_functions)})")

    def check_window(self, now: dt.datetime | None = None) -> None:
        if self.window is None:
            return
        moment = now or dt.datetime.now(dt.UTC)
        if not self.window.allows(moment):
            raise GuardrailRefused("window", f"{moment.astimezone(dt.UTC):%a %H:%M} UTC is outside the allowed "
                                             f"window ({self.window.describe()})")

    def check_targets(self, targets: Iterable[tuple[str, str, str | None]], *,
                      now: dt.datetime | None = None) -> None:
        """Every (region, function name, function ARN) a run would fault, and the moment: before any change."""
        self.check_window(now)
        for region, name, arn in targets:
            self.check_function(region, name, arn)


def _minutes(hhmm: str) -> int:
    if hhmm == "24:00":
        return 24 * 60
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


# -- parsing (called by the deployment description's loader) --------------------------------------

def parse_guardrails(v: Validator, raw: Any, known_regions: Iterable[str] = ()) -> Guardrails:
    if raw is None:
        return Guardrails()
    top = v.mapping(raw, "guardrails", "a mapping")
    v.known_keys(top, "guardrails", {"account_id", "allowed_regions", "allowed_functions", "max_fault_s",
                                     "window", "stop_conditions"})
    account = top.get("account_id")
    if account is not None:
        account = str(account) if isinstance(account, int) else account
        if not isinstance(account, str) or not re.fullmatch(r"\d{12}", account):
            v.fail("guardrails.account_id", "a 12-digit AWS account id (quoted)", top.get("account_id"))
    regions = _strings(v, top.get("allowed_regions"), "guardrails.allowed_regions")
    known = set(known_regions)
    for i, region in enumerate(regions or ()):
        if known and region not in known:
            v.fail(f"guardrails.allowed_regions[{i}]", "an AWS region name", region)
    functions = _strings(v, top.get("allowed_functions"), "guardrails.allowed_functions")
    max_fault = top.get("max_fault_s")
    if max_fault is not None:
        max_fault = v.number(max_fault, "guardrails.max_fault_s", "a number of seconds > 0")
        if max_fault <= 0:
            v.fail("guardrails.max_fault_s", "a number of seconds > 0", max_fault)
    return Guardrails(account_id=account, allowed_regions=regions, allowed_functions=functions,
                      max_fault_s=max_fault, window=_window(v, top.get("window")),
                      stop_conditions=_stop_conditions(v, top.get("stop_conditions")))


def _strings(v: Validator, raw: Any, path: str) -> tuple[str, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        v.fail(path, "a non-empty list of strings", raw)
    return tuple(v.string(item, f"{path}[{i}]") for i, item in enumerate(raw))


def _window(v: Validator, raw: Any) -> Window | None:
    if raw is None:
        return None
    w = v.mapping(raw, "guardrails.window", "a mapping of days, start, end")
    v.known_keys(w, "guardrails.window", {"days", "start", "end"})
    days = _strings(v, w.get("days"), "guardrails.window.days") or DAYS
    for i, day in enumerate(days):
        if day.lower() not in DAYS:
            v.fail(f"guardrails.window.days[{i}]", "one of " + ", ".join(DAYS), day)
    bounds = {}
    for key, default in (("start", "00:00"), ("end", "24:00")):
        value = w.get(key, default)
        if not isinstance(value, str) or not (_HHMM.match(value) or (key == "end" and value == "24:00")):
            v.fail(f"guardrails.window.{key}", "a time HH:MM (UTC)", value)
        bounds[key] = value
    if bounds["start"] == bounds["end"]:
        v.fail("guardrails.window.end", "a time other than start", bounds["end"])
    return Window(days=tuple(d.lower() for d in days), start=bounds["start"], end=bounds["end"])


def _stop_conditions(v: Validator, raw: Any) -> StopConditions:
    if raw is None:
        return StopConditions()
    s = v.mapping(raw, "guardrails.stop_conditions", "a mapping of alarms, error_rate, stop_file")
    v.known_keys(s, "guardrails.stop_conditions", {"alarms", "error_rate", "stop_file"})
    alarms = []
    for i, text in enumerate(_strings(v, s.get("alarms"), "guardrails.stop_conditions.alarms") or ()):
        match = _ALARM_ARN.match(text)
        if not match:
            v.fail(f"guardrails.stop_conditions.alarms[{i}]", "a CloudWatch alarm ARN "
                   "(arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME)", text)
            raise AssertionError  # unreachable: fail raises
        alarms.append(AlarmRef(region=match.group(1), account_id=match.group(2), name=match.group(3)))
    rate = None
    if s.get("error_rate") is not None:
        r = v.mapping(s["error_rate"], "guardrails.stop_conditions.error_rate", "a mapping of max, window_s")
        v.known_keys(r, "guardrails.stop_conditions.error_rate", {"max", "window_s", "min_requests"})
        if "max" not in r:
            raise UsageError(f"{getattr(v, 'source', 'deployment')}: guardrails.stop_conditions.error_rate.max: "
                             "required key is missing")
        share = v.number(r["max"], "guardrails.stop_conditions.error_rate.max", "a share between 0 and 1")
        if not 0 <= share <= 1:
            v.fail("guardrails.stop_conditions.error_rate.max", "a share between 0 and 1", share)
        window_s = v.number(r.get("window_s", 60), "guardrails.stop_conditions.error_rate.window_s",
                            "a number of seconds > 0")
        if window_s <= 0:
            v.fail("guardrails.stop_conditions.error_rate.window_s", "a number of seconds > 0", window_s)
        minimum = r.get("min_requests", 20)
        if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1:
            v.fail("guardrails.stop_conditions.error_rate.min_requests", "an integer >= 1", minimum)
        rate = ErrorRate(max=share, window_s=window_s, min_requests=minimum)
    stop_file = s.get("stop_file")
    if stop_file is not None:
        stop_file = v.string(stop_file, "guardrails.stop_conditions.stop_file")
    return StopConditions(alarms=tuple(alarms), error_rate=rate, stop_file=stop_file)
