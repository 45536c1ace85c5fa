"""Ground truth: every transition in the local cloud with its exact wall-clock time.

Tests hold the harness's measurements against this record. Events are plain dicts
{"seq", "t", "kind", ...}; `t` is time.time() so it compares with the harness's clock.
Kinds used: checker_result, health_status, dns_answer, replication_applied,
replication_paused, replication_resumed, fault, lambda_config.

Stored compactly: (seq, t, kind, field names, field values) tuples, the field-name tuple shared
by every event of the same shape, and mapping or list values (a replication's item key) kept as
compact JSON text, so a long soak's events cost about half what dicts would (a
replication_applied event ~300 B instead of ~700 B: at 30 writes/s that is the cloud's main
memory growth until the log is full); readers get dicts, built on read.
"""

from __future__ import annotations

import collections
import itertools
import json
import threading
import time
from typing import Any

MAX_EVENTS = 200_000  # bounded: a long soak must not grow memory without limit (~60 MB when full)

_Stored = tuple  # (seq, t, kind, names, values)


class _Packed(str):
    """A mapping or list value kept as compact JSON text; unpacked on read."""

    __slots__ = ()


def _pack(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return _Packed(json.dumps(value, separators=(",", ":")))
    return value


def _unpack(value: Any) -> Any:
    return json.loads(value) if type(value) is _Packed else value


class GroundTruth:
    def __init__(self, max_events: int = MAX_EVENTS) -> None:
        self._lock = threading.Lock()
        self._events: collections.deque[_Stored] = collections.deque(maxlen=max_events)
        self._shapes: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._seq = 0

    def record(self, kind: str, **fields: Any) -> dict[str, Any]:
        names = tuple(fields)
        values = tuple(_pack(value) for value in fields.values())
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
        return [{"seq": seq, "t": t, "kind": k, **{name: _unpack(value) for name, value in zip(names, values, strict=True)}}
                for seq, t, k, names, values in snapshot
                if seq > since and (kind is None or k == kind)]

    @property
    def last_seq(self) -> int:
        """The seq of the latest event recorded (0: none yet)."""
        with self._lock:
            return self._seq
