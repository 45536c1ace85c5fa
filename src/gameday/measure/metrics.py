"""Game-day figures from recorded traffic events, scenario marks and observations. Pure functions.

Inputs: traffic events {t_start, t_end, op, ok, status, latency_s, region,
item_id, error}; marks {fault, detected, dns_shift, restore, recovered} (time.time());
for RPO, the ids present in each region after recovery; for replication lag, samples
(source, target, written_at, seen_at).

Why columns: every figure is computed over up to ~100k events; the events are turned
once into sorted numpy columns (`EventTable`) that every function accepts in place of
the list, so computing all figures stays well under a second.

Percentiles are nearest-rank (the smallest recorded value with at least p% of the values
at or below it): always a latency that really happened.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gameday.deployment import Slo
from gameday.errors import UsageError
from gameday.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy")


DEFAULT_WINDOW_AWS_S = 10.0  # outage sliding window, in AWS seconds (scaled by time_scale)
DEFAULT_MAX_ERROR_RATE = 0.05


# -- event columns ---------------------------------------------------------------------
@dataclass(frozen=True)
class EventTable:
    """Traffic events as numpy columns sorted by t_start."""

    t_start: np.ndarray
    t_end: np.ndarray
    ok: np.ndarray
    latency: np.ndarray
    is_put: np.ndarray
    region: np.ndarray  # object: str | None
    item_id: np.ndarray  # object: int

    @classmethod
    def from_events(cls, events: Sequence[Mapping[str, Any]]) -> EventTable:
        if not events:
            empty = np.empty(0)
            return cls(empty, empty, empty.astype(bool), empty, empty.astype(bool), empty.astype(object),
                       empty.astype(object))
        # Column by column, with the cyclic garbage collector paused: the columns hold no cycles, and
        # collections triggered mid-build would traverse every event dict again and again.
        paused = gc.isenabled()
        gc.disable()
        try:
            return cls._build(events)
        finally:
            if paused:
                gc.enable()

    @classmethod
    def _build(cls, events: Sequence[Mapping[str, Any]]) -> EventTable:
        t_start = np.array([e["t_start"] for e in events], dtype=np.float64)
        order = np.argsort(t_start, kind="stable")
        t_end = np.array([e["t_end"] for e in events], dtype=np.float64)
        ok = np.array([bool(e["ok"]) for e in events], dtype=bool)
        latency = np.array([e["latency_s"] for e in events], dtype=np.float64)
        is_put = np.array([e["op"] == "put" for e in events], dtype=bool)
        region = np.empty(len(events), dtype=object)
        region[:] = [e.get("region") for e in events]
        item_id = np.empty(len(events), dtype=object)
        item_id[:] = [e.get("item_id") for e in events]
        return cls(t_start[order], t_end[order], ok[order], latency[order], is_put[order], region[order],
                   item_id[order])

    def __len__(self) -> int:
        return len(self.t_start)

    def select(self, mask: np.ndarray) -> EventTable:
        return EventTable(self.t_start[mask], self.t_end[mask], self.ok[mask], self.latency[mask],
                          self.is_put[mask], self.region[mask], self.item_id[mask])


Events = Sequence[Mapping[str, Any]] | EventTable


def as_table(events: Events) -> EventTable:
    return events if isinstance(events, EventTable) else EventTable.from_events(events)


def percentile(values: Sequence[float] | np.ndarray, p: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return None
    rank = max(1, int(np.ceil(p / 100.0 * arr.size)))
    return float(np.partition(arr, rank - 1)[rank - 1])


# -- marks -----------------------------------------------------------------------------
def mark_interval(marks: Mapping[str, float | None], start: str, end: str) -> float | None:
    """marks[end] - marks[start], None when either is missing."""
    a, b = marks.get(start), marks.get(end)
    return None if a is None or b is None else float(b) - float(a)


def detection_s(marks: Mapping[str, float | None]) -> float | None:
    """Fault -> Route 53 reported the region unhealthy."""
    return mark_interval(marks, "fault", "detected")


def dns_shift_s(marks: Mapping[str, float | None]) -> float | None:
    """Fault -> DNS answers stopped naming the failed region."""
    return mark_interval(marks, "fault", "dns_shift")


def aws_seconds(value: float | None, time_scale: float) -> float | None:
    """What a locally measured duration corresponds to on AWS (value / time_scale)."""
    return None if value is None else _on_aws(value, time_scale)


def _on_aws(value: float, time_scale: float) -> float:
    if not time_scale > 0:
        raise UsageError(f"time_scale: expected a number > 0, got {time_scale!r}")
    return value / time_scale


# -- client-observed outage --------------------------------------------------------------
@dataclass(frozen=True)
class Outage:
    """First failed request after the fault -> end of the last failed request of the bad period.

    `recovered` is False when the error rate was still at or over the threshold in the last full
    window recorded (then `end` is None: the outage lasted beyond the record).
    """

    start: float | None
    end: float | None
    errors: int
    requests: int
    recovered: bool

    @property
    def duration_s(self) -> float | None:
        if self.start is None:
            return 0.0
        return None if self.end is None else self.end - self.start


def client_outage(events: Events, fault_t: float, *, window_s: float,
                  max_error_rate: float = DEFAULT_MAX_ERROR_RATE, ops: Collection[str] | None = None) -> Outage:
    """The outage a client saw, from requests started at or after `fault_t`.

    Windows [t_i, t_i + window_s) are anchored at each request start; a window is bad when its
    error rate (failed / requests started in it) is >= max_error_rate. Only full windows (ending
    before the last recorded request start) are judged. The outage ends with the last failed request
    inside the last bad window; later stray failures under the threshold do not extend it. With no
    bad window at all, the outage is the first failed request alone.
    """
    if not window_s > 0:
        raise UsageError(f"window_s: expected seconds > 0, got {window_s!r}")
    if not 0 < max_error_rate <= 1:
        raise UsageError(f"max_error_rate: expected a share in (0, 1], got {max_error_rate!r}")
    table = as_table(events)
    mask = table.t_start >= fault_t
    if ops is not None:
        wanted_put, wanted_get = "put" in ops, "get" in ops
        mask &= (table.is_put & wanted_put) | (~table.is_put & wanted_get)
    t = table.select(mask)
    failed = ~t.ok
    if not failed.any():
        return Outage(None, None, 0, 0, True)
    i0 = int(np.argmax(failed))
    start = float(t.t_start[i0])
    starts = t.t_start
    cum = np.concatenate(([0], np.cumsum(failed)))
    anchors = np.arange(i0, len(t))
    full = starts[anchors] + window_s <= starts[-1]
    anchors = anchors[full]
    if anchors.size == 0:
        return Outage(start, None, int(failed[i0:].sum()), len(t) - i0, False)
    ends = np.searchsorted(starts, starts[anchors] + window_s, side="left")
    errors_in = cum[ends] - cum[anchors]
    bad = errors_in >= max_error_rate * (ends - anchors)
    if bad[-1]:
        return Outage(start, None, int(failed[i0:].sum()), len(t) - i0, False)
    if not bad.any():
        end = float(t.t_end[i0])
    else:
        last_bad = int(np.flatnonzero(bad)[-1])
        upto = int(ends[last_bad])
        end = float(t.t_end[i0:upto][failed[i0:upto]].max())
    in_window = (starts >= start) & (starts <= end)
    return Outage(start, end, int((failed & in_window).sum()), int(in_window.sum()), True)


def outage_split(outage: Outage | None, marks: Mapping[str, float | None]) -> dict[str, float | None]:
    """The client outage [start, end] cut at the moments Route 53 reported the region unhealthy
    (mark "detected") and DNS stopped answering it ("dns_shift"): detection, routing change and
    client cache, which add up to the outage. Why: an outage far beyond its SLO is acted on in
    the part that grew (a slow health check, slow routing, or records whose TTL pins clients)."""
    names = ("outage_detection_s", "outage_routing_s", "outage_client_cache_s")
    if outage is not None and outage.start is None:
        return dict.fromkeys(names, 0.0)          # no request failed: no outage to split
    start, end = (outage.start, outage.end) if outage is not None else (None, None)
    detected, shifted = marks.get("detected"), marks.get("dns_shift")
    if start is None or end is None or detected is None or shifted is None:
        return dict.fromkeys(names)
    cuts = [start, min(max(detected, start), end), min(max(shifted, detected, start), end), end]
    return {name: round(b - a, 4) for name, a, b in zip(names, cuts, cuts[1:], strict=False)}


# -- latency ----------------------------------------------------------------------------
@dataclass(frozen=True)
class LatencyStats:
    p50_s: float | None
    p99_s: float | None
    n: int


def latency_stats(events: Events, *, start: float | None = None, end: float | None = None,
                  ok_only: bool = False) -> LatencyStats:
    """p50/p99 latency of requests started in [start, end) (every request, failed ones too, unless ok_only)."""
    table = as_table(events)
    lo = 0 if start is None else int(np.searchsorted(table.t_start, start, side="left"))
    hi = len(table) if end is None else int(np.searchsorted(table.t_start, end, side="left"))
    values = table.latency[lo:hi]
    if ok_only:
        values = values[table.ok[lo:hi]]
    return LatencyStats(percentile(values, 50), percentile(values, 99), int(values.size))


def latency_by_phase(events: Events, fault_t: float, during_end_t: float | None,
                     after_end_t: float | None = None) -> dict[str, LatencyStats]:
    """before: < fault; during: [fault, during_end); after: [during_end, after_end)."""
    table = as_table(events)
    phases = {"before": latency_stats(table, end=fault_t),
              "during": latency_stats(table, start=fault_t, end=during_end_t)}
    phases["after"] = (latency_stats(table, start=during_end_t, end=after_end_t) if during_end_t is not None
                       else LatencyStats(None, None, 0))
    return phases


# -- RPO ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rpo:
    """Acknowledged writes missing from at least one region after recovery."""

    lost_writes: int
    missing_ids: list[int]
    missing_by_region: dict[str, list[int]] = field(default_factory=dict)


def rpo(acked_ids: Iterable[int], present: Mapping[str, Collection[int]]) -> Rpo:
    """`present`: region -> ids found in that region's table. 0 lost on a healthy deployment."""
    acked = set(acked_ids)
    by_region: dict[str, list[int]] = {}
    lost: set[int] = set()
    for region, ids in present.items():
        missing = acked.difference(ids)
        if missing:
            by_region[region] = sorted(missing)
            lost |= missing
    return Rpo(len(lost), sorted(lost), by_region)


# -- replication lag --------------------------------------------------------------------
@dataclass(frozen=True)
class LagStats:
    p50_s: float | None
    p99_s: float | None
    max_s: float | None
    n: int


def replication_lag(samples: Iterable[Sequence[Any] | Mapping[str, Any]]) -> dict[tuple[str, str], LagStats]:
    """Per ordered (source, target) pair, from (source, target, written_at, seen_at) samples.

    Samples may be tuples or mappings with those keys.
    """
    return {pair: _lag_stats(values) for pair, values in sorted(_lags_by_pair(samples).items())}


def overall_lag(samples: Iterable[Sequence[Any] | Mapping[str, Any]]) -> LagStats:
    """p50/p99 over every pair together (the summary row's replication_lag_p50_s / _p99_s)."""
    return _lag_stats([lag for values in _lags_by_pair(samples).values() for lag in values])


def _lags_by_pair(samples: Iterable[Sequence[Any] | Mapping[str, Any]]) -> dict[tuple[str, str], list[float]]:
    lags: dict[tuple[str, str], list[float]] = {}
    for sample in samples:
        if type(sample) is tuple or type(sample) is list:  # the common case, without an ABC check
            source, target, written, seen = sample
        elif isinstance(sample, Mapping):
            source, target = sample["source"], sample["target"]
            written, seen = sample["written_at"], sample["seen_at"]
        else:
            source, target, written, seen = sample
        pair = (source, target)
        values = lags.get(pair)
        if values is None:
            values = lags[pair] = []
        values.append(float(seen) - float(written))
    return lags


def _lag_stats(values: Sequence[float] | np.ndarray) -> LagStats:
    arr = np.asarray(values, dtype=np.float64)
    return LagStats(percentile(arr, 50), percentile(arr, 99), float(arr.max()) if arr.size else None, int(arr.size))


# -- failback ---------------------------------------------------------------------------
def failback_s(events: Events, restore_t: float, region: str | Collection[str]) -> float | None:
    """Restore -> the end of the first successful request served by the restored region after which
    every successful request (started after the restore) was served by it. None if that never happened.

    `region`: the region name, or several names that count as it (e.g. the name and its address).
    """
    names = {region} if isinstance(region, str) else set(region)
    table = as_table(events)
    lo = int(np.searchsorted(table.t_start, restore_t, side="left"))
    ok = table.ok[lo:]
    served = np.fromiter((r in names for r in table.region[lo:]), dtype=bool, count=len(table) - lo)
    others = np.flatnonzero(ok & ~served)
    first = others[-1] + 1 if others.size else 0
    mine = np.flatnonzero((ok & served)[first:])
    if mine.size == 0:
        return None
    return float(table.t_end[lo + first + mine[0]]) - restore_t


# -- SLOs ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SloViolation:
    figure: str
    measured: float | None
    limit: float
    bound: str  # "max" | "min"
    compared: float | None  # the value compared with the limit (AWS-equivalent seconds for *_s figures)

    @property
    def message(self) -> str:
        if self.measured is None:
            return f"{self.figure}: not measured (SLO {self.bound} {self.limit:g})"
        shown = f"{self.measured:g}"
        if self.compared is not None and self.compared != self.measured:
            shown += f" ({self.compared:g} AWS-equivalent)"
        word = "over the maximum" if self.bound == "max" else "under the minimum"
        return f"{self.figure}: {shown} is {word} {self.limit:g}"


def check_slos(figures: Mapping[str, Any], slos: Mapping[str, Any] | Slo, *,
               time_scale: float = 1.0) -> list[SloViolation]:
    """Violations of `slos` ({figure: max} or {figure: {"max": x, "min": y}}, None = not set; or a
    dataclass such as gameday.deployment.Slo with maxima) by `figures`.

    Figures named *_s are durations: compared in AWS-equivalent seconds (value / time_scale), so
    one SLO file holds for AWS and for the time-scaled local cloud. A figure with an SLO that was
    not measured (None) is a violation. An SLO naming an unknown figure is a UsageError.
    """
    specs: Mapping[str, Any] = slos if isinstance(slos, Mapping) else dataclasses.asdict(slos)
    violations = []
    for name, spec in specs.items():
        if spec is None:  # not set
            continue
        if name not in figures:
            raise UsageError(f"slo.{name}: unknown figure (expected one of: {', '.join(sorted(figures))})")
        bounds = spec if isinstance(spec, Mapping) else {"max": spec}
        for bound, limit in bounds.items():
            if bound not in ("max", "min") or isinstance(limit, bool) or not isinstance(limit, (int, float)):
                raise UsageError(f"slo.{name}: expected a number or {{max: N, min: N}}, got {spec!r}")
            measured = figures[name]
            if measured is None:
                violations.append(SloViolation(name, None, float(limit), bound, None))
                continue
            compared = _on_aws(float(measured), time_scale) if name.endswith("_s") else float(measured)
            if (bound == "max" and compared > limit) or (bound == "min" and compared < limit):
                violations.append(SloViolation(name, float(measured), float(limit), bound, compared))
    return violations


# -- everything at once --------------------------------------------------------------------
def summarize(
    events: Events,
    marks: Mapping[str, float | None],
    *,
    acked_ids: Iterable[int] | None = None,
    present: Mapping[str, Collection[int]] | None = None,
    lag_samples: Sequence[Sequence[Any] | Mapping[str, Any]] | None = None,
    restored_region: str | Collection[str] | None = None,
    time_scale: float = 1.0,
    window_s: float | None = None,
    max_error_rate: float = DEFAULT_MAX_ERROR_RATE,
) -> dict[str, Any]:
    """Every figure for a summary row (flat, JSON-ready; durations in local seconds).

    Phases for latency: before the fault; during = fault -> end of the client outage (or the DNS
    shift mark when the outage did not end or there was none); after = that -> restore (or the end).
    `window_s` defaults to DEFAULT_WINDOW_AWS_S * time_scale.
    """
    table = as_table(events)
    window = window_s if window_s is not None else DEFAULT_WINDOW_AWS_S * time_scale
    fault = marks.get("fault")
    figures: dict[str, Any] = {
        "requests": len(table),
        "failed_requests": int((~table.ok).sum()),
        "detection_s": detection_s(marks),
        "dns_shift_s": dns_shift_s(marks),
    }
    acked = list(acked_ids) if acked_ids is not None else [int(i) for i in table.item_id[table.ok & table.is_put]]
    figures["acked_writes"] = len(acked)

    outage = client_outage(table, fault, window_s=window, max_error_rate=max_error_rate) if fault is not None else None
    figures["client_outage_s"] = outage.duration_s if outage else None
    figures["errors"] = outage.errors if outage else None
    figures["outage_start"] = outage.start if outage else None
    figures["outage_end"] = outage.end if outage else None
    figures["outage_recovered"] = outage.recovered if outage else None
    figures.update(outage_split(outage, marks))

    if fault is not None:
        during_end = outage.end if outage and outage.end is not None else marks.get("dns_shift")
        phases = latency_by_phase(table, fault, during_end, marks.get("restore"))
    else:
        phases = {"before": latency_stats(table), "during": LatencyStats(None, None, 0),
                  "after": LatencyStats(None, None, 0)}
    for phase, stats in phases.items():
        figures[f"latency_{phase}_p50_s"] = stats.p50_s
        figures[f"latency_{phase}_p99_s"] = stats.p99_s

    if present is not None:
        loss = rpo(acked, present)
        figures["rpo_lost_writes"] = loss.lost_writes
        figures["rpo_missing_ids"] = loss.missing_ids
        figures["rpo_missing_by_region"] = loss.missing_by_region
    else:
        figures["rpo_lost_writes"] = None
        figures["rpo_missing_ids"] = []
        figures["rpo_missing_by_region"] = {}

    if lag_samples:
        by_pair = _lags_by_pair(lag_samples)
        overall = _lag_stats(np.concatenate([np.asarray(v, dtype=np.float64) for v in by_pair.values()]))
        figures["replication_lag_p50_s"] = overall.p50_s
        figures["replication_lag_p99_s"] = overall.p99_s
        figures["replication_lag"] = {f"{s}->{t}": {"p50_s": v.p50_s, "p99_s": v.p99_s, "max_s": v.max_s, "n": v.n}
                                      for (s, t), v in ((pair, _lag_stats(by_pair[pair])) for pair in sorted(by_pair))}
    else:
        figures["replication_lag_p50_s"] = figures["replication_lag_p99_s"] = None
        figures["replication_lag"] = {}

    restore = marks.get("restore")
    figures["failback_s"] = (failback_s(table, restore, restored_region)
                             if restore is not None and restored_region is not None else None)
    return figures


def aws_equivalents(figures: Mapping[str, Any], time_scale: float) -> dict[str, float | None]:
    """{name: AWS-equivalent seconds} for every duration figure (*_s), to show beside the measured ones."""
    return {name: aws_seconds(value, time_scale) for name, value in figures.items()
            if name.endswith("_s") and (value is None or isinstance(value, (int, float)))}
