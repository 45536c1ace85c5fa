"""Stop conditions: while a fault is in place, watch what says real users are hurt (a CloudWatch
alarm in ALARM, the game day's own client error rate over a window), or that an operator wants
the game day stopped (a stop file, SIGUSR1), and trip once: the caller restores at once and the
scenario ends `stopped`, naming the condition and when it tripped.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tenacity import Retrying, retry_if_result
from tenacity.stop import stop_base

from gameday.safety.guardrails import StopConditions

STOP_SIGNAL = signal.SIGUSR1


@dataclass(frozen=True)
class Tripped:
    """The first stop condition that tripped: which, what it saw, and when (time.time())."""

    condition: str          # alarm | error_rate | stop_file | signal
    detail: str
    at: float

    def describe(self) -> str:
        return f"stop condition {self.condition} tripped at {time.strftime('%H:%M:%S', time.gmtime(self.at))} UTC: " \
               f"{self.detail}"


def hurts_users(status: int | None) -> bool:
    """Whether a request's outcome counts against the error rate: no answer (connection refused or
    reset, timeout), a 5xx, or a 429 (the backend turned the user away). Other 4xx answers are the
    request's own fault (a bad id, a route the client got wrong): not the backend hurting users."""
    return status is None or status >= 500 or status == 429


class RequestWindow:
    """The game day's own requests over the last `window_s` seconds (already scaled), fed from any
    thread. Counts are kept as requests arrive and leave the window, so adding one and reading the
    rate are both O(1) (amortised): the traffic pays a lock and an append per request."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.sent_total = 0
        self.failed_total = 0
        self.last_error: str | None = None
        self._seen: deque[tuple[float, bool]] = deque()
        self._failed = 0
        self._lock = threading.Lock()

    def add(self, t_end: float, status: int | None, error: str | None = None) -> None:
        """One request ended at `t_end` (time.time()) with `status` (None: no answer)."""
        failed = hurts_users(status)
        with self._lock:
            self._seen.append((t_end, failed))
            self.sent_total += 1
            if failed:
                self._failed += 1
                self.failed_total += 1
                self.last_error = error or (f"HTTP {status}" if status is not None else "no answer")
            self._expire(t_end)

    def counts(self, now: float | None = None) -> tuple[int, int]:
        """(requests, failed) that ended within the window before `now`."""
        with self._lock:
            self._expire(time.time() if now is None else now)
            return len(self._seen), self._failed

    def _expire(self, now: float) -> None:
        oldest = now - self.window_s
        seen = self._seen
        while seen and seen[0][0] < oldest:
            if seen.popleft()[1]:
                self._failed -= 1


class _stop_when(stop_base):  # noqa: N801 (tenacity's naming of stop strategies)
    """Stop polling once `event` is set (the watch was stopped, or a condition tripped)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, retry_state: Any) -> bool:
        return self.event.is_set()


class StopWatch:
    """A background watcher; `on_trip` runs once, from the watcher's thread (or the signal handler).

    `cloudwatch(region)` gives a CloudWatch client; `requests()` gives the game day's own requests so
    `requests` is the window the game day's own requests are fed into (its length already scaled).
    """

    def __init__(self, conditions: StopConditions, *, on_trip: Callable[[Tripped], None], poll_s: float,
                 time_scale: float = 1.0, cloudwatch: Callable[[str], Any] | None = None,
                 requests: RequestWindow | None = None) -> None:
        self.conditions = conditions
        self.on_trip = on_trip
        self.poll_s = poll_s
        self.time_scale = time_scale
        self.cloudwatch = cloudwatch
        self.requests = requests
        self.tripped: Tripped | None = None
        self.checks = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._previous_handler: Any = None

    # -- one look at every condition ----------------------------------------------------------
    def check(self) -> Tripped | None:
        """Look once; the first condition found tripped (None: all clear)."""
        self.checks += 1
        now = time.time()
        c = self.conditions
        if c.stop_file and os.path.exists(c.stop_file):
            return Tripped("stop_file", f"{c.stop_file} exists", now)
        if c.alarms and self.cloudwatch is not None:
            by_region: dict[str, list[str]] = {}
            for alarm in c.alarms:
                by_region.setdefault(alarm.region, []).append(alarm.name)
            for region, names in by_region.items():
                answer = self.cloudwatch(region).describe_alarms(AlarmNames=names)
                for alarm in answer.get("MetricAlarms", []) + answer.get("CompositeAlarms", []):
                    if alarm.get("StateValue") == "ALARM":
                        reason = (alarm.get("StateReason") or "").replace("\n", " ")[:200]
                        return Tripped("alarm", f"{alarm['AlarmName']} ({region}) is in ALARM: {reason}", now)
        if c.error_rate is not None and self.requests is not None:
            sent, failed = self.requests.counts(now)
            if sent >= c.error_rate.min_requests and failed / sent > c.error_rate.max:
                return Tripped("error_rate", _error_rate_detail(c.error_rate.max, c.error_rate.window_s, sent, failed,
                                                                self.requests, self.time_scale), now)
        return None

    def trip(self, tripped: Tripped) -> None:
        with self._lock:
            if self.tripped is not None:
                return
            self.tripped = tripped
        self._stopping.set()
        self.on_trip(tripped)

    # -- the watcher ----------------------------------------------------------------------------
    def start(self) -> StopWatch:
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(
                STOP_SIGNAL, lambda signum, frame: self.trip(Tripped("signal", f"signal {signum} (SIGUSR1) received",
                                                                     time.time())))
        self._thread = threading.Thread(target=self._watch, name="stop-conditions", daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        stopping = _stop_when(self._stopping)

        def sleep(seconds: float) -> None:
            self._stopping.wait(seconds)

        def look() -> Tripped | None:
            try:
                return self.check()
            except Exception:  # noqa: BLE001 - an unreadable alarm must not end the watch; the next look retries
                return None

        retrying = Retrying(stop=stopping, wait=lambda _: self.poll_s, sleep=sleep,
                            retry=retry_if_result(lambda got: got is None), retry_error_callback=lambda _: None)
        found = retrying(look)
        if found is not None:
            self.trip(found)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 2 * self.poll_s))
            self._thread = None
        if self._previous_handler is not None:
            signal.signal(STOP_SIGNAL, self._previous_handler)
            self._previous_handler = None

    def __enter__(self) -> StopWatch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _error_rate_detail(limit: float, window_s: float, sent: int, failed: int, window: RequestWindow,
                       time_scale: float) -> str:
    scaled = f" ({window.window_s:.3g} s at time scale {time_scale:g})" if time_scale != 1.0 else ""
    return (f"{failed / sent:.1%} of the game day's own requests failed ({failed} of {sent}) over the last "
            f"{window_s:g} s{scaled}, max {limit:.1%}; last error: {window.last_error}")
