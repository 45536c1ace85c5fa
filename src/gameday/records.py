"""The one shape of a run: what a fault or a game day did, phase by phase, with what it saw.

Why one shape: faults, game days, metrics and reports all describe the same run. A fault fills
its phases (inject, verify, active, restore); a game day fills its own phases plus marks (the
time.time() of each step), figures, evidence and findings; the summary row and the Allure
report are read from it. Every phase is timed in a `finally` (as chaostoolkit does), so a
failed or interrupted step still has its start, end and error.

Times are time.time() (comparable across processes, and with the local cloud's ground truth).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from gameday.errors import VERDICTS, Category, category_of_exception

#: Phase.status values, and the word Allure uses for each (Phase.outcome).
RUNNING, SUCCEEDED, FAILED, BROKEN, INTERRUPTED = "running", "succeeded", "failed", "broken", "interrupted"
_OUTCOMES = {RUNNING: "running", SUCCEEDED: "passed", FAILED: "failed", BROKEN: "broken", INTERRUPTED: "broken"}
ERROR_CHARS = 500

#: The figures a run reports that an SLO can bound: name -> what it measures. The one list: the
#: deployment file's `slo:`, `--slo` and the checks all take these names. Figures named *_s are
#: durations (compared in AWS-equivalent seconds); the others are counts.
FIGURES: dict[str, str] = {
    "detection_s": "fault injected -> Route 53 reports the region unhealthy",
    "dns_shift_s": "fault injected -> DNS stops answering the region",
    "client_outage_s": "time during which the clients' requests failed",
    "outage_detection_s": "client outage, first part: until Route 53 reported the region unhealthy",
    "outage_routing_s": "client outage, second part: until DNS stopped answering the region",
    "outage_client_cache_s": "client outage, last part: until clients' DNS caches followed",
    "errors": "failed requests during the game day",
    "failed_requests": "requests that failed, over the whole traffic",
    "rpo_lost_writes": "acknowledged writes missing after recovery",
    "write_conflicts": "writes rejected because another region was writing the item (MRSC)",
    "strong_read_after_s": "last write acknowledged before the outage -> strong read in a survivor",
    "replication_lag_p50_s": "replication lag, median",
    "replication_lag_p99_s": "replication lag, 99th percentile",
    "failback_s": "restore -> the region serves its clients again",
    "latency_before_p99_s": "request latency p99 before the fault",
    "latency_during_p99_s": "request latency p99 while the region was failed",
    "latency_after_p99_s": "request latency p99 after recovery",
}


def status_of_exception(exc: BaseException) -> str:
    """interrupted (Ctrl-C, SIGTERM), failed (a verification: an assertion, or a category that fails),
    else broken (the harness could not tell)."""
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED
    if isinstance(exc, AssertionError):
        return FAILED
    if getattr(exc, "category", None) is not None:
        return FAILED if VERDICTS[category_of_exception(exc)].status == "failed" else BROKEN
    return BROKEN


@dataclass
class Phase:
    """One step: name, start/end/duration, status, error, and what the step measured (`output`).

    A phase also reads and writes like a mapping, for the figures a step adds as it goes:
    ``phase["budget_s"] = 3.0``, ``phase.update(...)`` and ``phase.get(...)`` work on `output`;
    ``phase["name"]``, ``phase["outcome"]`` read the fields.
    """

    name: str
    start: float
    end: float | None = None
    duration_s: float | None = None
    status: str = RUNNING
    error: str | None = None
    output: dict[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        """Allure's word for the status: passed, failed or broken."""
        return _OUTCOMES.get(self.status, self.status)

    def __getitem__(self, key: str) -> Any:
        if key == "outcome":
            return self.outcome
        if key in _PHASE_FIELDS:
            return getattr(self, key)
        return self.output[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.output[key] = value

    def __contains__(self, key: object) -> bool:
        return key in _PHASE_FIELDS or key == "outcome" or key in self.output

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def setdefault(self, key: str, default: Any) -> Any:
        return self.output.setdefault(key, default)

    def update(self, other: Mapping[str, Any] | None = None, **values: Any) -> None:
        self.output.update(other or {}, **values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Phase:
        known = {k: data[k] for k in _PHASE_FIELDS if k in data}
        extra = {k: v for k, v in data.items() if k not in _PHASE_FIELDS and k != "outcome"}
        phase = cls(**{"name": "?", "start": 0.0, **known})
        phase.output.update(extra)
        return phase


_PHASE_FIELDS = frozenset(f.name for f in fields(Phase))


@dataclass
class Event:
    """Something a fault or probe saw happen at `t` (fault_injected, fault_restored, ...)."""

    kind: str
    t: float
    region: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunRecord:
    """Everything one run did and saw.

    `marks` are the time.time() of the steps that happened (fault, detected, dns_shift, restore,
    recovered, ...): a step that did not happen has no mark, never a None. `figures` are the
    measured numbers, `evidence` what they rest on, `findings` what the run found that is not a
    failure. The verdict is "fail" once a category or a message is set.
    """

    scenario: str = ""
    failed_region: str | None = None
    survivor: str | None = None
    phases: list[Phase] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    labels: dict[str, Any] = field(default_factory=dict)
    charts: list[str] = field(default_factory=list)
    category: Category | None = None
    message: str | None = None
    traffic: list[dict[str, Any]] = field(default_factory=list, repr=False)  # requests, drawn as the timeline

    # -- verdict ----------------------------------------------------------------------
    @property
    def verdict(self) -> str:
        return "fail" if self.category is not None or self.message is not None else "pass"

    def fail(self, category: Category | str, message: str) -> None:
        """Record the first failure (a later one, e.g. from cleaning up, does not replace it)."""
        if self.category is None:
            self.category = Category.parse(category)
            self.message = message

    # -- phases and events ---------------------------------------------------------------
    @contextmanager
    def phase(self, name: str, *, describe: Callable[[str], str] | None = None) -> Iterator[Phase]:
        """Time the block as phase `name`; its status and error are set from how the block ended.
        `describe` turns the error text into what may be kept (e.g. scrubbed)."""
        record = Phase(name=name, start=time.time())
        self.phases.append(record)
        started = time.perf_counter()
        try:
            yield record
            record.status = SUCCEEDED
        except BaseException as exc:
            record.status = status_of_exception(exc)
            text = type(exc).__name__ if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
            record.error = (describe(text) if describe else text)[:ERROR_CHARS]
            raise
        finally:
            record.duration_s = round(time.perf_counter() - started, 6)
            record.end = time.time()

    def get(self, name: str) -> Phase | None:
        """The latest phase called `name`."""
        found = [p for p in self.phases if p.name == name]
        return found[-1] if found else None

    def phase_dicts(self) -> list[dict[str, Any]]:
        return [p.to_dict() for p in self.phases]

    def phase_durations(self) -> dict[str, float]:
        return {p.name: p.duration_s for p in self.phases if p.duration_s is not None}

    def emit(self, kind: str, t: float | None = None, region: str | None = None, **data: Any) -> Event:
        event = Event(kind=kind, t=time.time() if t is None else t, region=region, data=data)
        self.events.append(event)
        return event

    # -- marks -------------------------------------------------------------------------
    def mark(self, name: str, t: float | None = None) -> float:
        """Set mark `name` to `t` (default: now) and return it."""
        self.marks[name] = time.time() if t is None else float(t)
        return self.marks[name]

    def since(self, start: str, t: float) -> float:
        """Seconds from mark `start` to `t` (the mark must have been set)."""
        return t - self.marks[start]

    # -- plain data ----------------------------------------------------------------------
    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RunRecord:
        """A record from a summary row (a worker's row file, or a row written by hand)."""
        category = row.get("failure_category")
        record = cls(
            scenario=str(row.get("scenario") or ""),
            failed_region=row.get("failed_region"),
            survivor=row.get("survivor"),
            phases=[Phase.from_dict(p) for p in row.get("phases") or [] if isinstance(p, Mapping)],
            events=[Event(**e) for e in row.get("events") or [] if isinstance(e, Mapping)],
            figures=dict(row.get("metrics") or {}),
            marks={k: float(v) for k, v in (row.get("marks") or {}).items() if v is not None},
            evidence=dict(row.get("evidence") or {}),
            findings=list(row.get("findings") or []),
            charts=[str(p) for p in row.get("charts") or []],
            category=Category.parse(category) if category else None,
            message=row.get("error"),
        )
        for key in ("detection_s", "dns_shift_s"):  # top-level figures a row may carry beside its metrics
            if row.get(key) is not None and record.figures.get(key) is None:
                record.figures[key] = row[key]
        if row.get("verdict") != "pass" and record.verdict == "pass":
            record.message = "failed (no category recorded)"  # a failed row stays failed
        return record


# -- rows on disk: each worker writes its own files, the end of the run merges them -----------------
ROWS_DIR = "rows"


def write_row(run_dir: Path, row: Mapping[str, Any]) -> Path:
    """One scenario's summary row, written whole (rename) so a reader never sees half a file."""
    rows = Path(run_dir) / ROWS_DIR
    rows.mkdir(parents=True, exist_ok=True)
    path = rows / f"{time.time():.6f}-{uuid.uuid4().hex[:8]}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(row, default=str, indent=1))
    os.replace(tmp, path)
    return path


def read_rows(run_dir: Path) -> list[dict[str, Any]]:
    """Every row the run's workers wrote, in the order they were written."""
    rows_dir = Path(run_dir) / ROWS_DIR
    if not rows_dir.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(rows_dir.glob("*.json"))]
