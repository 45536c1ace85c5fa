"""While a fault is in place: its time cap (guardrails.max_fault_s) and the deployment's stop
conditions. Either one tripping restores the fault at once, from the watch's own thread, whatever
the scenario is doing; the scenario then ends `stopped` when it leaves the fault, naming the
condition and when it tripped.

Why a thread of its own: the scenario may be deep in a wait with minutes of budget left; a
production game day must not keep a region broken while an alarm says users are hurt. The
scenario itself is not interrupted (an asynchronous interrupt could land outside the fault's
block and abort the whole pytest session): with the fault gone, its waits end on their own.

The game day's own traffic reaches the error-rate condition through `own_traffic(deployment)`:
a sink the traffic calls once per request, which forwards to the window of every watch in place
on that deployment. Why a feed per deployment rather than a reference passed down: the traffic
starts before the fault and the fault is made deep inside a procedure; the feed joins the two
without threading the watch through every procedure, and counts only while a watch is in place.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from gameday.safety.guardrails import Guardrails
from gameday.safety.stop_conditions import RequestWindow, StopWatch, Tripped


class TrafficFeed:
    """Fans each request of the game day's own traffic out to the windows of the watches in place.
    `report` reads an immutable tuple (no lock): its cost per request with no watch is one call."""

    def __init__(self) -> None:
        self._windows: tuple[RequestWindow, ...] = ()
        self._lock = threading.Lock()

    def report(self, t_end: float, status: int | None, error: str | None = None) -> None:
        for window in self._windows:
            window.add(t_end, status, error)

    def subscribe(self, window: RequestWindow) -> None:
        with self._lock:
            self._windows = (*self._windows, window)

    def unsubscribe(self, window: RequestWindow) -> None:
        with self._lock:
            self._windows = tuple(w for w in self._windows if w is not window)


_FEEDS: dict[tuple[str, str], TrafficFeed] = {}
_FEEDS_LOCK = threading.Lock()


def own_traffic(deployment: Any) -> TrafficFeed:
    """The feed of one deployment (its global URL and API endpoint): what its game days' traffic reports to."""
    key = (deployment.global_url, deployment.aws_endpoint_url or "")
    with _FEEDS_LOCK:
        return _FEEDS.setdefault(key, TrafficFeed())


class FaultWatch:
    """Start after the change is applied, stop before the normal restore. `restore` must be safe to
    call twice and from another thread (the base protocol's is)."""

    def __init__(self, guardrails: Guardrails, *, restore: Callable[[], None], time_scale: float, poll_s: float,
                 cloudwatch: Callable[[str], Any] | None, describe: str,
                 traffic: TrafficFeed | None = None) -> None:
        self.guardrails = guardrails
        self.restore = restore
        self.time_scale = time_scale
        self.poll_s = poll_s
        self.cloudwatch = cloudwatch
        self.describe = describe
        self.traffic = traffic
        self.requests: RequestWindow | None = None   # the game day's own requests while the fault is in place
        self.tripped: Tripped | None = None
        self._cap: threading.Timer | None = None
        self._stop_watch: StopWatch | None = None
        self._lock = threading.Lock()
        self._done = False

    def start(self) -> FaultWatch:
        cap = self.guardrails.max_fault_s
        if cap is not None:
            self._cap = threading.Timer(cap * self.time_scale, self._trip,
                                        args=(Tripped("max_fault_s", f"{self.describe} reached its cap of {cap:g} s "
                                                                     "(guardrails.max_fault_s)", 0.0),))
            self._cap.daemon = True
            self._cap.start()
        conditions = self.guardrails.stop_conditions
        if conditions.error_rate is not None and self.traffic is not None:
            self.requests = RequestWindow(conditions.error_rate.window_s * self.time_scale)
            self.traffic.subscribe(self.requests)
        if conditions.any:
            self._stop_watch = StopWatch(conditions, on_trip=self._trip, poll_s=self.poll_s,
                                         time_scale=self.time_scale, cloudwatch=self.cloudwatch,
                                         requests=self.requests).start()
        return self

    def _trip(self, tripped: Tripped) -> None:
        with self._lock:
            if self._done or self.tripped is not None:
                return
            self.tripped = Tripped(tripped.condition, tripped.detail, tripped.at or time.time())
        self.restore()   # a failed restore raises here, in the watch's thread; the fault's exit restores again

    def stop(self) -> None:
        """No more trips (the scenario is leaving the fault on its own)."""
        with self._lock:
            self._done = True
        if self._cap is not None:
            self._cap.cancel()
        if self._stop_watch is not None:
            self._stop_watch.stop()
        if self.requests is not None and self.traffic is not None:
            self.traffic.unsubscribe(self.requests)

    def counted(self) -> dict[str, Any] | None:
        """What the error-rate condition saw while the fault was in place (None: no such condition)."""
        window = self.requests
        if window is None:
            return None
        return {"requests": window.sent_total, "failed": window.failed_total, "window_s": window.window_s,
                "last_error": window.last_error}
