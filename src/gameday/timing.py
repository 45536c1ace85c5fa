"""Time in a game day: budgets scaled from AWS seconds, the poll interval, and the one measured poll.

Why one poll: every wait of a game day (Route 53 health, DNS answers, table reads, a fault taking
effect, traffic reaching a target) is a measurement, and its resolution is part of the figure it
yields: a detection time is only as precise as the gap between two polls. So every wait goes
through `measured_poll`, which reports what it measured (elapsed time, attempts, the interval
asked for and the largest gap seen) beside the result, and never hides a sleep.

Budgets come from the deployment's own settings (check interval x threshold, TTL) times its time
scale (1.0 on AWS; the local cloud runs AWS behaviour faster by that factor).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    nap,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    stop_before_delay,
    stop_never,
    stop_when_event_set,
    wait_fixed,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

T = TypeVar("T")


class stop_before_moving_delay(stop_base):
    """tenacity's stop_before_delay with a budget read at every attempt: a wait whose budget is
    measured in the pace of what it watches (e.g. checkers that run late) grows it as it learns."""

    def __init__(self, budget: Callable[[], float]) -> None:
        self.budget = budget

    def __call__(self, retry_state: RetryCallState) -> bool:
        if retry_state.seconds_since_start is None:
            raise RuntimeError("__call__() called but seconds_since_start is not set")
        return retry_state.seconds_since_start + retry_state.upcoming_sleep >= self.budget()

#: Route 53's RequestInterval of the reference templates (10 "fast" or 30 seconds are allowed).
DEFAULT_CHECK_INTERVAL_S = 10.0
POLLS_PER_INTERVAL = 5          # a fifth of a checker interval: well inside "one interval" precision
POLL_FLOOR_S = 0.02             # the local cloud at scale 0.01: still far below its request limits
POLL_CAP_S = 1.0                # on AWS: one-second resolution, and ~1 request/s per wait (API limits)


def scaled(aws_seconds: float, time_scale: float, *, floor_s: float = 0.0, slack_s: float = 0.0) -> float:
    """`aws_seconds` as measured seconds at `time_scale`, plus `slack_s`, at least `floor_s`."""
    return max(aws_seconds * time_scale + slack_s, floor_s)


def poll_interval_for(check_interval_s: float, time_scale: float) -> float:
    """A fifth of the scaled health-check interval, between POLL_FLOOR_S and POLL_CAP_S."""
    return min(POLL_CAP_S, max(POLL_FLOOR_S, check_interval_s * time_scale / POLLS_PER_INTERVAL))


def poll_interval(deployment: Any) -> float:
    """The poll interval of every wait against `deployment` (its check interval and time scale)."""
    interval = getattr(deployment, "health_check_interval_s", None) or DEFAULT_CHECK_INTERVAL_S
    return poll_interval_for(float(interval), float(deployment.time_scale))


@dataclass
class Measured(Generic[T]):
    """What a poll measured: whether `until` held, the last value (None if every attempt raised),
    and the poll's own figures."""

    reached: bool
    value: T | None
    elapsed_s: float                 # start of the wait -> end of the last attempt
    attempts: int
    poll_s: float                    # the interval asked for
    max_gap_s: float                 # the largest gap between the starts of two consecutive attempts
    started_at: float                # time.time()
    reached_at: float | None         # time.time() when the attempt that satisfied `until` ended
    error: BaseException | None = None   # the last attempt's exception, if it raised one that is retried
    gaps: list[float] = field(default_factory=list, repr=False)

    def figures(self) -> dict[str, Any]:
        return {"elapsed_s": round(self.elapsed_s, 6), "attempts": self.attempts, "poll_s": self.poll_s,
                "max_gap_s": round(self.max_gap_s, 6)}


def measured_poll(
    attempt: Callable[[], T],
    *,
    until: Callable[[T], bool] = bool,
    poll_s: float,
    budget_s: float | Callable[[], float] | None,
    retry_on: tuple[type[BaseException], ...] | Callable[[BaseException], bool] = (),
    stop_event: threading.Event | None = None,
    max_attempts: int | None = None,
    wait: wait_base | None = None,
    sleep: Callable[[float], None] | None = None,
) -> Measured[T]:
    """Call `attempt` every `poll_s` until `until(result)` holds, the budget is spent, `stop_event` is
    set or `max_attempts` were made. Never raises for an unmet condition: the caller decides what an
    unmet wait means (its own ScenarioError, with the evidence). Exceptions that `retry_on` names are
    polled through; any other propagates at once.

    Built on tenacity with `stop_before_delay`, so a wait never sleeps past its budget. A callable
    `budget_s` is read before every sleep (a budget that grows with what the wait learns).
    """
    starts: list[float] = []
    state: dict[str, Any] = {"value": None, "error": None, "reached_at": None}
    began = time.monotonic()
    started_at = time.time()

    def one() -> T:
        starts.append(time.monotonic())
        state["error"] = None
        try:
            value = attempt()
        except BaseException as exc:
            state["error"] = exc
            raise
        state["value"] = value
        if until(value):
            state["reached_at"] = time.time()
        return value

    stops: list[stop_base] = []
    if callable(budget_s):
        stops.append(stop_before_moving_delay(budget_s))
    elif budget_s is not None:
        stops.append(stop_before_delay(budget_s))
    if stop_event is not None:
        stops.append(stop_when_event_set(stop_event))
    if max_attempts is not None:
        stops.append(stop_after_attempt(max_attempts))
    stop: stop_base = stop_never
    for s in stops:
        stop = s if stop is stop_never else stop | s
    if callable(retry_on) and not isinstance(retry_on, tuple):
        predicate = retry_on
    else:
        kinds = retry_on

        def predicate(exc: BaseException) -> bool:
            return bool(kinds) and isinstance(exc, kinds)

    def give_up(retry_state: RetryCallState) -> None:
        return None

    retrying = Retrying(stop=stop, wait=wait if wait is not None else wait_fixed(poll_s),
                        retry=retry_if_result(lambda _: state["reached_at"] is None) | retry_if_exception(predicate),
                        reraise=False, retry_error_callback=give_up,
                        sleep=sleep if sleep is not None else nap.sleep)
    retrying(one)
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    reached = state["reached_at"] is not None
    return Measured(reached=reached, value=state["value"], elapsed_s=time.monotonic() - began,
                    attempts=len(starts), poll_s=poll_s, max_gap_s=max(gaps, default=0.0),
                    started_at=started_at, reached_at=state["reached_at"],
                    error=None if reached else state["error"], gaps=gaps)
