"""The protocol every fault follows: snapshot -> journal BEFORE the change -> inject -> verify ->
yield -> restore exactly on every exit path (pass, assertion, exception, Ctrl-C, SIGTERM).

    with ThrottleFunction(deployment, "eu-west-1", journal=journal) as fault:
        ...   # the fault is active (phase "active") until the block exits

Why one base class: the order of those steps and the signal handling around the restore are
what make a fault safe. A fault module only says what it targets, how to read its state, how
to change it, how to see that the change took effect, and how to undo a journal entry (that
same function serves `gameday restore`, so the run and the repair undo the same way).

- The journal entry is written before anything changes: a run killed right after the change
  still leaves something to restore. A fault whose write may be refused because the state moved
  underneath (a conditional write, re-read and retried) calls `journal_before` after every read,
  so the journal always holds what the write that went through will be undone to.
- The restore runs with SIGINT/SIGTERM held back; a signal that arrived meanwhile is raised once
  the restore is done. A failed restore raises RollbackFailed and the entry stays in the journal.
- A restore detail that mentions drift (the target changed beside the fault) is journalled.
- A reporting hook (`on_event`) never breaks a fault or its restore: its exceptions are dropped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Literal, Self

from gameday import timing
from gameday.deployment import Deployment
from gameday.errors import RollbackFailed, ScenarioStopped
from gameday.faults import marks
from gameday.faults.journal_file import Journal
from gameday.faults.signals import SigtermRaises, Terminated, signals_deferred
from gameday.faults.watch import FaultWatch, own_traffic
from gameday.records import Phase, RunRecord

if TYPE_CHECKING:
    from gameday.aws import AwsClients

VERIFY_BUDGET_AWS_S = 60.0      # AWS seconds for a change to show its effect (scaled, floored)
VERIFY_BUDGET_FLOOR_S = 5.0

EventHook = Callable[[str, dict[str, Any]], None]


class JournalledFault:
    """Subclasses set `fault_name` and implement target(), snapshot(), change(), inject(), the static
    `restore_entry(entry, clients) -> detail`, and optionally verify() and describe()."""

    fault_name = "fault"

    def __init__(self, deployment: Deployment, region: str, *, clients: AwsClients | None = None,
                 journal: Journal | str | None = None, run_record: RunRecord | None = None,
                 on_event: EventHook | None = None, verify: bool = True,
                 verify_budget_s: float | None = None) -> None:
        from gameday.aws import AwsClients  # boto3 loads only when a fault is made

        self.deployment = deployment
        self.region = deployment.region(region)
        self.clients = clients if clients is not None else AwsClients(deployment)
        self.journal = journal if isinstance(journal, Journal) else Journal(journal)
        self.record = run_record if run_record is not None else RunRecord(scenario=self.fault_name,
                                                                            failed_region=self.region.name)
        self.check = verify
        self.verify_budget_s = verify_budget_s if verify_budget_s is not None else \
            timing.scaled(VERIFY_BUDGET_AWS_S, deployment.time_scale, floor_s=VERIFY_BUDGET_FLOOR_S)
        self.poll_s = timing.poll_interval(deployment)
        self._on_event = on_event
        self._sigterm = SigtermRaises()
        self._active: AbstractContextManager[Phase] | None = None
        self._active_phase: Phase | None = None
        self._restored = False
        self._restore_lock = threading.Lock()
        self._watch: FaultWatch | None = None
        self._marked_arns: list[str] = []
        self._injected_at: float | None = None
        self._change_sent_at: float | None = None
        self.entry: dict[str, Any] | None = None
        self.before: dict[str, Any] | None = None
        self.restored_at: float | None = None
        self.restore_detail: str | None = None
        self.verified: dict[str, Any] = {}

    # -- what a fault says about itself -----------------------------------------------
    def target(self) -> dict[str, Any]:
        """What the fault changes, as journalled: {"region", "function", "endpoint", ...}."""
        raise NotImplementedError

    def snapshot(self) -> dict[str, Any]:
        """The state before the change (only what the change touches), as journalled."""
        raise NotImplementedError

    def change(self) -> dict[str, Any]:
        raise NotImplementedError

    def inject(self) -> None:
        raise NotImplementedError

    def verify(self) -> None:
        """Raise FaultNotEffective when the change shows no effect (default: nothing to check).
        Leave what was seen in `self.verified`: it is the verify phase's output either way."""

    def after(self) -> dict[str, Any] | None:
        """What to journal about the state right after the change (default: nothing)."""
        return None

    def describe(self) -> str:
        """The change in a few words, for messages."""
        return f"{self.fault_name} on {self.target().get('function')}"

    def inject_output(self) -> dict[str, Any]:
        """The inject phase's output."""
        return {"region": self.region.name, "before": self.before, "change": self.change()}

    @staticmethod
    def restore_entry(entry: dict[str, Any], clients: Any) -> str:
        raise NotImplementedError

    def undo(self, entry: dict[str, Any]) -> str:
        """Undo this run's entry (default: the same function `gameday restore` uses)."""
        return type(self).restore_entry(entry, self.clients)

    # -- the journal, before any change --------------------------------------------------
    def apply(self) -> None:
        """Journal the state before, then change it. Override (calling `journal_before` after each
        read) when the change is a conditional write that may be re-read and retried."""
        self.journal_before(self.snapshot())
        self.change_sent()
        self.inject()

    def change_sent(self) -> None:
        """Call right before the request that makes the change: the fault starts when it was asked
        for. AWS applies a change some time after accepting it (a Lambda update is InProgress
        first), so marking the fault only once the change is confirmed would shorten every
        figure measured from it."""
        self._change_sent_at = time.time()

    def journal_before(self, before: dict[str, Any]) -> dict[str, Any]:
        """Journal `before` as what the restore puts back: a new entry the first time (refused with
        FaultAlreadyInjected if one is pending on the same target), an update after a re-read."""
        self.before = before
        if self.entry is None:
            self.entry = self.journal.begin(self.fault_name, self.target(), before, self.change())
        elif self.entry.get("before") != before:
            self.journal.update(self.entry, before=before)
        return self.entry

    # -- the mark on what the fault changes --------------------------------------------------
    def marked_functions(self) -> list[str]:
        """The Lambda functions the fault changes, which it marks (none: the fault changes no function)."""
        function = self.target().get("function")
        return [function] if function else []

    def _mark(self) -> None:
        """Before the snapshot: refuse if another run has marked any of the functions, then mark them
        all as ours (every check comes before the first mark, so a refusal leaves no mark behind)."""
        functions = self.marked_functions()
        if not functions:
            return
        lam = self.clients.lambda_(self.region.name)
        arns = {function: marks.function_arn(lam, function) for function in functions}
        for function, arn in arns.items():
            marks.check_unmarked(lam, arn, function=function, region=self.region.name)
        for arn in arns.values():
            marks.mark(lam, arn)
            self._marked_arns.append(arn)

    def _unmark(self) -> None:
        lam = self.clients.lambda_(self.region.name) if self._marked_arns else None
        while self._marked_arns:
            marks.unmark(lam, self._marked_arns.pop())

    # -- the injected fault --------------------------------------------------------------
    @property
    def injected_at(self) -> float:
        """time.time() when the change was requested (the fault's mark; see `change_sent`)."""
        if self._injected_at is None:
            raise RuntimeError(f"{self.fault_name} in {self.region.name} is not injected")
        return self._injected_at

    @property
    def injected(self) -> bool:
        return self._injected_at is not None

    # -- context manager ----------------------------------------------------------------
    def __enter__(self) -> Self:
        self._sigterm.install()
        try:
            with self.record.phase("inject") as phase:
                self._mark()
                self.apply()
                applied_at = time.time()
                self._injected_at = self._change_sent_at if self._change_sent_at is not None else applied_at
                assert self.entry is not None, f"{type(self).__name__}.apply() did not journal the change"
                after = self.after()
                self.journal.update(self.entry, times={"injected": self._injected_at, "applied": applied_at},
                                    **({"after": after} if after is not None else {}))
                phase.output = {**self.inject_output(),
                                "applied_after_s": round(applied_at - self._injected_at, 4)}
            self._emit("fault_injected", {"t": self._injected_at, "applied_at": applied_at})
            self._watch = FaultWatch(self.deployment.guardrails, restore=self.restore,
                                     time_scale=self.deployment.time_scale, poll_s=self.poll_s,
                                     cloudwatch=lambda region: self.clients.client("cloudwatch", region),
                                     describe=f"{self.describe()} in {self.region.name}",
                                     traffic=own_traffic(self.deployment)).start()
            if self.check:
                with self.record.phase("verify") as phase:
                    try:
                        self.verify()
                    finally:
                        phase.output = dict(self.verified)  # evidence, also for fault_not_effective
        except BaseException as exc:
            self._finish(exc)   # restore (loudly on failure), then the original error goes on
            raise
        self._active = self.record.phase("active")
        self._active_phase = self._active.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        if self._active is not None:
            active, self._active = self._active, None
            counted = self._watch.counted() if self._watch is not None else None
            if counted is not None and self._active_phase is not None:
                self._active_phase.output["own_traffic"] = counted   # what the error-rate condition judged
            active.__exit__(exc_type, exc, tb)
        self._finish(exc)
        return False

    def _finish(self, exc: BaseException | None) -> None:
        """Restore exactly, with signals held back; then raise what must be raised: a tripped stop
        condition outranks the interruption it caused."""
        if self._watch is not None:
            self._watch.stop()
        with signals_deferred(after=self._sigterm.release()) as deferred:
            self.restore()
        tripped = self._watch.tripped if self._watch is not None else None
        if tripped is not None:
            self._emit("stopped", {"t": tripped.at, "condition": tripped.condition, "detail": tripped.detail})
            raise ScenarioStopped(tripped.condition, tripped.describe(), tripped.at) from exc
        if deferred and exc is None:
            raise Terminated(f"signal(s) {deferred} arrived while restoring; restore completed")

    def restore(self) -> None:
        """Undo the fault exactly (idempotent, and safe from the watch's thread); RollbackFailed keeps
        the entry for `gameday restore`."""
        with self._restore_lock:
            self._restore_locked()

    def _restore_locked(self) -> None:
        if self.entry is None:      # nothing was journalled, so nothing changed: only the mark to remove
            self._unmark()
            return
        if self._restored:
            return
        with self.record.phase("restore") as phase:
            try:
                detail = self.undo(self.entry)
            except Exception as error:
                message = f"{type(error).__name__}: {error}".replace("\n", " ")
                self.journal.mark_restore_failed(self.entry, message)
                raise RollbackFailed(f"ROLLBACK FAILED: {self.describe()} in {self.region.name} not undone: "
                                     f"{message}; run `gameday restore --journal {self.journal.path}`") from error
            self.journal.mark_restored(self.entry, drift="drift" in detail)
            self._unmark()
            self._restored = True
            self.restored_at = time.time()
            self.restore_detail = detail
            phase.output = {"detail": detail}
        self._emit("fault_restored", {"t": self.restored_at, "detail": detail})

    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        payload = {"region": self.region.name, "fault": self.fault_name,
                   "function": self.target().get("function"), **data}
        self.record.emit(kind, t=data.get("t"), region=self.region.name,
                         **{k: v for k, v in payload.items() if k not in ("t", "region")})
        if self._on_event is not None:
            try:
                self._on_event(kind, payload)
            except Exception:  # a reporting hook must never break a fault or its restore
                pass
