"""Ground truth: every transition in the local cloud with its exact wall-clock time.

Tests hold the harness's measurements against this record. Events are plain dicts
{"seq", "t", "kind", ...}; `t` is time.time() so it compares with the harness's clock.
Kinds used: checker_result, health_status, dns_answer, replication_applied,
replication_paused, replication_resumed, fault, lambda_config.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

MAX_EVENTS = 200_000  # bounded: a long soak must not grow memory without limit


class GroundTruth:
    def __init__(self, max_events: int = MAX_EVENTS) -> None:
        self._lock = threading.Lock()
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=max_events)
        self._seq = 0

    def record(self, kind: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            self._seq += 1
            event = {"seq": self._seq, "t": time.time(), "kind": kind, **fields}
            self._events.append(event)
        return event

    def events(self, since: int = 0, kind: str | None = None) -> list[dict[str, Any]]:
        """Events with seq > since (optionally of one kind), oldest first."""
        with self._lock:
            snapshot = list(self._events)
        return [e for e in snapshot if e["seq"] > since and (kind is None or e["kind"] == kind)]

    @property
    def last_seq(self) -> int:
        """The seq of the latest event recorded (0: none yet)."""
        with self._lock:
            return self._seq
