"""Ground truth: every transition in the local cloud with its exact wall-clock time.

Tests hold the harness's measurements against this record. Events are plain dicts
{"seq", "t", "kind", ...}; `t` is time.time() so it compares with the harness's clock.
Kinds used: checker_result, health_status, dns_answer, replication_applied,
replication_paused, replication_resumed, fault, lambda_config.

Stored compactly: (seq, t, kind, field names, field values) tuples, the field-name tuple shared
by every event of the same shape, so a long soak's events cost ~40% less than dicts would
(~270 B instead of ~450 B for a replication_applied event); readers get dicts, built on read.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from typing import Any

MAX_EVENTS = 200_000  # bounded: a long soak must not grow memory without limit

_Stored = tuple  # (seq, t, kind, names, values)


class GroundTruth:
    def __init__(self, max_events: int = MAX_EVENTS) -> None:
        self._lock = threading.Lock()
        self._events: collections.deque[_Stored] = collections.deque(maxlen=max_events)
        self._shapes: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._seq = 0

    def record(self, kind: str, **fields: Any) -> dict[str, Any]:
        names = tuple(fields)
        values = tuple(fields.values())
        with self._lock:
            self._seq += 1
            seq, t = self._seq, time.time()
            names = self._shapes.setdefault(names, names)  # one tuple per shape, shared
            self._events.append((seq, t, kind, names, values))
        return {"seq": seq, "t": t, "kind": kind, **fields}

    def events(self, since: int = 0, kind: str | None = None) -> list[dict[str, Any]]:
        """Events with seq > since (optionally of one kind), oldest first."""
        with self._lock:
            events = self._events
            # seq grows by one per event: skip the older ones without looking at them
            skip = max(0, since - events[0][0] + 1) if events else 0
            snapshot = list(itertools.islice(events, skip, None))
        return [{"seq": seq, "t": t, "kind": k, **dict(zip(names, values))}
                for seq, t, k, names, values in snapshot
                if seq > since and (kind is None or k == kind)]

    @property
    def last_seq(self) -> int:
        """The seq of the latest event recorded (0: none yet)."""
        with self._lock:
            return self._seq
