"""Faults: each a context manager that snapshots, journals, injects, yields and restores.

Shared here: the run record every phase fills in (in a `finally`, as chaostoolkit
does), the errors a scenario tells apart, signal handling that turns SIGTERM into a
KeyboardInterrupt-like exception while a fault is active and shields a restore
from being interrupted, and the registry `gameday restore` uses to undo an entry.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator

from gameday.errors import GamedayError


class FaultNotEffective(GamedayError):
    """The change was applied but the region still answers healthy: not a detection timeout."""

    category = "fault_not_effective"


class RollbackFailed(GamedayError):
    """A fault could not be undone; the journal keeps it for `gameday restore`."""

    category = "rollback_failure"


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived while a fault was active (a KeyboardInterrupt, so the same paths undo it)."""


# -- run record ----------------------------------------------------------------------

@dataclass
class Phase:
    name: str
    start: float
    end: float | None = None
    duration_s: float | None = None
    status: str = "running"          # succeeded | failed | interrupted
    error: str | None = None
    output: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunRecord:
    """Every phase of a fault with start, end, duration and outcome (time.time() clock)."""

    phases: list[Phase] = field(default_factory=list)

    @contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        record = Phase(name=name, start=time.time())
        self.phases.append(record)
        try:
            yield record
            record.status = "succeeded"
        except KeyboardInterrupt as exc:
            record.status, record.error = "interrupted", type(exc).__name__
            raise
        except BaseException as exc:
            record.status, record.error = "failed", f"{type(exc).__name__}: {exc}"[:500]
            raise
        finally:
            record.end = time.time()
            record.duration_s = record.end - record.start

    def get(self, name: str) -> Phase | None:
        found = [p for p in self.phases if p.name == name]
        return found[-1] if found else None

    def to_dict(self) -> list[dict[str, Any]]:
        return [asdict(p) for p in self.phases]


# -- signals -------------------------------------------------------------------------

def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class SigtermRaises:
    """While installed, SIGTERM raises Terminated in the main thread; uninstall puts the
    previous handler back. Elsewhere than the main thread it does nothing (Python only
    delivers signals there)."""

    def __init__(self) -> None:
        self._previous: Any = None
        self._installed = False

    def install(self) -> None:
        if not _in_main_thread() or self._installed:
            return

        def raise_terminated(signum: int, frame: Any) -> None:
            raise Terminated(f"signal {signum} (SIGTERM) while a fault was active")

        self._previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, raise_terminated)
        self._installed = True

    def uninstall(self) -> None:
        if not self._installed:
            return
        signal.signal(signal.SIGTERM, self._previous if self._previous is not None else signal.SIG_DFL)
        self._installed = False

    def release(self) -> dict[int, Any]:
        """Mark uninstalled without touching the handler; returns {SIGTERM: previous handler}
        for `signals_deferred(after=...)` to put back once the restore is done."""
        if not self._installed:
            return {}
        self._installed = False
        return {signal.SIGTERM: self._previous}


@contextmanager
def signals_deferred(after: dict[int, Any] | None = None) -> Iterator[list[int]]:
    """Hold SIGINT and SIGTERM back while a restore runs; yields the signals that arrived.

    A second Ctrl-C must not leave a function half-restored. On exit the handlers found
    on entry are put back, except those `after` names (signal -> handler to install).
    """
    received: list[int] = []
    if not _in_main_thread():
        yield received
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous.update(after or {})
    for sig in previous:
        signal.signal(sig, lambda signum, frame: received.append(signum))
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


# -- restore registry ----------------------------------------------------------------

def restorer_for(fault: str) -> Callable[[dict[str, Any], Any], str]:
    """The function that undoes a journal entry of `fault`: (entry, clients) -> detail."""
    from gameday.faults import concurrency, lambda_env, replication

    restorers = {"flip_health": lambda_env.restore_entry,
                 "replication_pause": replication.restore_entry,
                 "replication_drop": replication.restore_entry,
                 concurrency.FAULT_NAME: concurrency.restore_entry}
    try:
        return restorers[fault]
    except KeyError:
        raise GamedayError(f"journal entry of unknown fault {fault!r}; known: {', '.join(restorers)}") from None


from gameday.faults.flip_health import FlipHealth, flip_health  # noqa: E402  (re-exported)

__all__ = [
    "FaultNotEffective", "RollbackFailed", "Terminated", "Phase", "RunRecord", "SigtermRaises",
    "signals_deferred", "restorer_for", "FlipHealth", "flip_health",
]
