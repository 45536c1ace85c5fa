"""While a fault is in place: its time cap (guardrails.max_fault_s) and the deployment's stop
conditions. Either one tripping restores the fault at once, from the watch's own thread, whatever
the scenario is doing; the scenario then ends `stopped` when it leaves the fault, naming the
condition and when it tripped.

Why a thread of its own: the scenario may be deep in a wait with minutes of budget left; a
production game day must not keep a region broken while an alarm says users are hurt. The
scenario itself is not interrupted (an asynchronous interrupt could land outside the fault's
block and abort the whole pytest session): with the fault gone, its waits end on their own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from gameday.safety.guardrails import Guardrails
from gameday.safety.stop_conditions import StopWatch, Tripped


class FaultWatch:
    """Start after the change is applied, stop before the normal restore. `restore` must be safe to
    call twice and from another thread (the base protocol's is)."""

    def __init__(self, guardrails: Guardrails, *, restore: Callable[[], None], time_scale: float, poll_s: float,
                 cloudwatch: Callable[[str], Any] | None, describe: str) -> None:
        self.guardrails = guardrails
        self.restore = restore
        self.time_scale = time_scale
        self.poll_s = poll_s
        self.cloudwatch = cloudwatch
        self.describe = describe
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
        if conditions.any:
            self._stop_watch = StopWatch(conditions, on_trip=self._trip, poll_s=self.poll_s,
                                         time_scale=self.time_scale, cloudwatch=self.cloudwatch).start()
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
