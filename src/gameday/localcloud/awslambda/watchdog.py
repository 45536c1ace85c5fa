"""Deadlines for work that runs in the caller's thread: call_at(when, fn) runs fn from one
watchdog thread at `when` unless the returned timer is cancelled first.

Why: the data plane runs a Lambda handler in the connection's own thread (handing each request
to a pool thread and back cost ~15% of a PutItem's CPU), so something else must answer API
Gateway's 504 when the integration timeout passes. Arming and cancelling take a lock and a heap
push; the thread wakes only when the earliest live deadline is due (cancelled timers at the
front are dropped in one go), not once per request.
"""

from __future__ import annotations

import heapq
import itertools
import sys
import threading
import time
from collections.abc import Callable


class Timer:
    """One armed deadline; cancel() is idempotent and safe from any thread."""

    __slots__ = ("when", "fn", "cancelled")

    def __init__(self, when: float, fn: Callable[[], object]) -> None:
        self.when = when
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        self.fn = _nothing  # what the callback holds (a connection) is not kept until the deadline


def _nothing() -> None:
    return None


class Watchdog:
    def __init__(self, name: str = "watchdog") -> None:
        self._cv = threading.Condition()
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call_at(self, when: float, fn: Callable[[], object]) -> Timer:
        """`when` on time.monotonic()'s clock."""
        timer = Timer(when, fn)
        with self._cv:
            heapq.heappush(self._heap, (when, next(self._seq), timer))
            if self._heap[0][2] is timer:
                self._cv.notify()
        return timer

    def stop(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            due: list[Timer] = []
            with self._cv:
                while not self._stopping:
                    heap = self._heap
                    while heap and heap[0][2].cancelled:
                        heapq.heappop(heap)
                    now = time.monotonic()
                    while heap and heap[0][0] <= now:
                        timer = heapq.heappop(heap)[2]
                        if not timer.cancelled:
                            due.append(timer)
                    if due:
                        break
                    self._cv.wait(heap[0][0] - now if heap else None)
                if self._stopping:
                    return
            for timer in due:
                if timer.cancelled:
                    continue
                try:
                    timer.fn()
                except Exception as exc:  # one failing callback must not stop the others' deadlines
                    print(f"gameday local: watchdog callback failed: {exc!r}", file=sys.stderr)
