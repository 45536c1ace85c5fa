"""The shape every journalled fault shares: snapshot -> journal -> inject -> verify -> yield ->
restore exactly on every exit path (pass, assertion, exception, Ctrl-C, SIGTERM).

Why a base class: the order of those steps and the signal handling around the restore are
what make a fault safe; each fault module only says how to read its state, how to change it
and how to undo a journal entry (that same function serves `gameday restore`).
"""

from __future__ import annotations

import time
from typing import Any, Callable

from gameday.faults import RollbackFailed, RunRecord, SigtermRaises, Terminated, signals_deferred
from gameday.faults.journal import Journal


class JournalledFault:
    """Subclasses set `fault_name` and implement target(), snapshot(), change(), inject(),
    optionally verify(), and the static `restore_entry(entry, clients) -> detail`."""

    fault_name = "fault"

    def __init__(self, deployment: Any, region: str, *, clients: Any = None, journal: Journal | str | None = None,
                 run_record: RunRecord | None = None,
                 on_event: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        from gameday.aws import AwsClients

        self.deployment = deployment
        self.region = deployment.region(region)
        self.clients = clients if clients is not None else AwsClients(deployment)
        self.journal = journal if isinstance(journal, Journal) else Journal(journal)
        self.record = run_record if run_record is not None else RunRecord()
        self._on_event = on_event
        self._sigterm = SigtermRaises()
        self._restored = False
        self.entry: dict[str, Any] | None = None
        self.before: dict[str, Any] | None = None
        self.injected_at: float | None = None
        self.restored_at: float | None = None
        self.restore_detail: str | None = None
        self.verified: dict[str, Any] = {}

    # -- what a fault says about itself -----------------------------------------------
    def target(self) -> dict[str, Any]:
        raise NotImplementedError

    def snapshot(self) -> dict[str, Any]:
        raise NotImplementedError

    def change(self) -> dict[str, Any]:
        raise NotImplementedError

    def inject(self) -> None:
        raise NotImplementedError

    def verify(self) -> None:
        """Raise FaultNotEffective when the change shows no effect (default: nothing to check)."""

    @staticmethod
    def restore_entry(entry: dict[str, Any], clients: Any) -> str:
        raise NotImplementedError

    # -- context manager ----------------------------------------------------------------
    def __enter__(self) -> "JournalledFault":
        self._sigterm.install()
        try:
            with self.record.phase("inject") as phase:
                self.before = self.snapshot()
                # journalled BEFORE the change: a kill right after leaves something to restore
                self.entry = self.journal.begin(self.fault_name, self.target(), self.before, self.change())
                self.inject()
                self.injected_at = time.time()
                self.journal.update(self.entry, times={"injected": self.injected_at})
                phase.output = {"region": self.region.name, "before": self.before, "change": self.change()}
            self._emit("fault_injected", {"t": self.injected_at})
            with self.record.phase("verify") as phase:
                try:
                    self.verify()
                finally:
                    phase.output = dict(self.verified)
        except BaseException as exc:
            self._finish(exc)
            raise
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        self._finish(exc)
        return False

    def _finish(self, exc: BaseException | None) -> None:
        with signals_deferred(after=self._sigterm.release()) as deferred:
            self.restore()
        if deferred and exc is None:
            raise Terminated(f"signal(s) {deferred} arrived while restoring; restore completed")

    def restore(self) -> None:
        """Undo the fault exactly (idempotent); RollbackFailed keeps the entry for `gameday restore`."""
        if self._restored or self.entry is None:
            return
        with self.record.phase("restore") as phase:
            try:
                detail = type(self).restore_entry(self.entry, self.clients)
            except Exception as error:
                message = f"{type(error).__name__}: {error}".replace("\n", " ")
                self.journal.mark_restore_failed(self.entry, message)
                raise RollbackFailed(f"{self.fault_name} in {self.region.name} not undone: {message}; run "
                                     f"`gameday restore --journal {self.journal.path}`") from error
            self.journal.mark_restored(self.entry)
            self._restored = True
            self.restored_at = time.time()
            self.restore_detail = detail
            phase.output = {"detail": detail}
        self._emit("fault_restored", {"t": self.restored_at, "detail": detail})

    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        if self._on_event is not None:
            self._on_event(kind, {"region": self.region.name, "fault": self.fault_name, **data})
