"""The fault "flip health": set the region's Health function env `status` to 404 (the
article's game-day lever) so Route 53's checkers see the region fail.

    with FlipHealth(deployment, "eu-west-1", clients=clients) as fault:
        ...   # the region answers 404 on /health until the block exits

Order (DESIGN.md, principle 3): read the configuration -> journal the original value
of `status` (or its absence) -> merge the new value into the environment -> wait for
LastUpdateStatus Successful -> verify /health answers the new status (else
FaultNotEffective) -> yield -> on EVERY exit path restore exactly (read-merge-write,
wait Successful, journal "restored"). The restore runs outside the code that can be
interrupted, with SIGINT/SIGTERM held back; a failed restore raises RollbackFailed and
stays in the journal for `gameday restore`.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import requests
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_before_delay,
    wait_fixed,
)

from gameday.deployment import Deployment
from gameday.faults import (
    FaultNotEffective,
    RollbackFailed,
    RunRecord,
    SigtermRaises,
    Terminated,
    signals_deferred,
)
from gameday.faults import lambda_env
from gameday.faults.journal import Journal, env_fingerprint

FAULT_NAME = "flip_health"
STATUS_KEY = "status"
VERIFY_BUDGET_AWS_S = 60.0      # AWS seconds for an env change to show on /health (scaled, floored)
VERIFY_BUDGET_FLOOR_S = 5.0
HTTP_TIMEOUT_S = (3.05, 5.0)    # connect, read


def _healthy_code(code: int | None) -> bool:
    """What a Route 53 checker counts as healthy: 2xx or 3xx."""
    return code is not None and 200 <= code < 400


class FlipHealth:
    """Context manager for one flip of one region's Health function."""

    def __init__(self, deployment: Deployment, region: str, *, clients: Any = None, status: str = "404",
                 journal: Journal | str | None = None, run_record: RunRecord | None = None,
                 verify: bool = True, verify_budget_s: float | None = None,
                 update_budget_s: float = lambda_env.UPDATE_BUDGET_S,
                 on_event: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        from gameday.aws import AwsClients

        self.deployment = deployment
        self.region = deployment.region(region)
        self.function = self.region.functions.health
        self.clients = clients if clients is not None else AwsClients(deployment)
        self.status = str(status)
        self.journal = journal if isinstance(journal, Journal) else Journal(journal)
        self.record = run_record if run_record is not None else RunRecord()
        self.verify = verify
        self.verify_budget_s = verify_budget_s if verify_budget_s is not None else \
            max(VERIFY_BUDGET_AWS_S * deployment.time_scale, VERIFY_BUDGET_FLOOR_S)
        self.update_budget_s = update_budget_s
        self._poll_s = min(1.0, max(0.02, deployment.time_scale))
        self._on_event = on_event
        self._sigterm = SigtermRaises()
        self._restored = False
        self.entry: dict[str, Any] | None = None
        self.original: dict[str, Any] | None = None      # {"present": bool, "value": str|None}
        self.injected_at: float | None = None            # time.time() when the update was Successful
        self.restored_at: float | None = None
        self.verified: dict[str, Any] = {}               # what /health answered after the flip

    # -- context manager -----------------------------------------------------------
    def __enter__(self) -> "FlipHealth":
        self._sigterm.install()
        try:
            with self.record.phase("inject") as phase:
                self._inject()
                phase.output = {"region": self.region.name, "function": self.function,
                                "key": STATUS_KEY, "value": self.status, "original": self.original}
            if self.verify:
                with self.record.phase("verify") as phase:
                    try:
                        self._verify_effective()
                    finally:
                        phase.output = dict(self.verified)  # evidence, also for fault_not_effective
        except BaseException as exc:
            self._finish(exc)   # restore (loudly on failure), then the original error goes on
            raise
        self._active = self.record.phase("active")
        self._active.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        self._active.__exit__(exc_type, exc, tb)
        self._finish(exc)
        return False

    # -- steps ---------------------------------------------------------------------
    def _inject(self) -> None:
        lam = self.clients.lambda_(self.region.name)

        def journal_before_write(env: dict[str, str]) -> None:
            original = {"present": STATUS_KEY in env, "value": env.get(STATUS_KEY)}
            before = {"variables": {STATUS_KEY: original}, "fingerprint": env_fingerprint(env)}
            if self.entry is None:
                self.entry = self.journal.begin(
                    FAULT_NAME,
                    {"region": self.region.name, "function": self.function,
                     "endpoint": self.clients.endpoint_url},
                    before, {STATUS_KEY: self.status})
            elif self.entry["before"]["variables"] != before["variables"]:
                # re-read after a conflict: someone changed it meanwhile; journal what we will undo to
                self.journal.update(self.entry, before=before)
            self.original = original

        _, after = lambda_env.merge_environment(lam, self.function, {STATUS_KEY: self.status},
                                                budget_s=self.update_budget_s, poll_s=self._poll_s,
                                                on_read=journal_before_write)
        self.injected_at = time.time()
        assert self.entry is not None
        self.journal.update(self.entry, after={"fingerprint": env_fingerprint(after)},
                            times={"injected": self.injected_at})
        self._emit("fault_injected", {"region": self.region.name, "function": self.function,
                                      "t": self.injected_at})

    def _verify_effective(self) -> None:
        """GET /health until it answers the new status; still healthy at the budget -> FaultNotEffective."""
        expected = int(self.status) if self.status.isdigit() else None
        url = self.region.health_url
        seen: list[Any] = []
        started = time.monotonic()

        def get_status() -> int:
            with requests.get(url, timeout=HTTP_TIMEOUT_S, allow_redirects=False) as response:
                seen.append(response.status_code)
                return response.status_code

        retrying = Retrying(
            stop=stop_before_delay(self.verify_budget_s),
            wait=wait_fixed(self._poll_s),
            retry=retry_if_result(lambda code: code != expected) | retry_if_exception_type(requests.RequestException),
            reraise=False,
        )
        try:
            code: int | None = retrying(get_status)
        except RetryError as exc:
            outcome = exc.last_attempt
            code = None if outcome.failed else outcome.result()
            error = outcome.exception() if outcome.failed else None
            self.verified = {"url": url, "expected": expected, "answered": code,
                             "error": f"{type(error).__name__}" if error else None,
                             "elapsed_s": time.monotonic() - started, "attempts": len(seen)}
            if _healthy_code(code):
                raise FaultNotEffective(
                    f"{self.region.name}: {self.function} env {STATUS_KEY}={self.status} was applied, but {url} "
                    f"still answers {code} after {self.verify_budget_s:.1f} s (the Health function ignores its "
                    f"environment, or API Gateway invokes another version/alias)") from None
            return  # not the expected code, but not healthy either: the region is down as intended
        self.verified = {"url": url, "expected": expected, "answered": code, "error": None,
                         "elapsed_s": time.monotonic() - started, "attempts": len(seen)}

    def _finish(self, exc: BaseException | None) -> None:
        """Restore exactly, with signals held back; then raise what must be raised."""
        with signals_deferred(after=self._sigterm.release()) as deferred:
            self.restore()
        if deferred and exc is None:
            raise Terminated(f"signal(s) {deferred} arrived while restoring; restore completed")

    def restore(self) -> None:
        """Undo the fault (idempotent). Raises RollbackFailed; the journal keeps the entry."""
        if self._restored or self.entry is None:
            return
        with self.record.phase("restore") as phase:
            try:
                detail = lambda_env.restore_entry(self.entry, self.clients, budget_s=self.update_budget_s,
                                                  poll_s=self._poll_s)
            except Exception as error:
                message = f"{type(error).__name__}: {error}".replace("\n", " ")
                self.journal.mark_restore_failed(self.entry, message)
                raise RollbackFailed(
                    f"ROLLBACK FAILED: {self.function} in {self.region.name} still has {STATUS_KEY}={self.status}: "
                    f"{message}; run `gameday restore --journal {self.journal.path}`") from error
            self.journal.mark_restored(self.entry, drift="drift" in detail)
            self.restored_at = time.time()
            self._restored = True
            phase.output = {"detail": detail}
        self._emit("fault_restored", {"region": self.region.name, "function": self.function,
                                      "t": self.restored_at})

    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        if self._on_event is not None:
            try:
                self._on_event(kind, data)
            except Exception:  # a reporting hook must never break a fault or its restore
                pass


def flip_health(deployment: Deployment, region: str, **kwargs: Any) -> FlipHealth:
    """Convenience: `with flip_health(deployment, "eu-west-1", clients=c): ...`."""
    return FlipHealth(deployment, region, **kwargs)


__all__ = ["FlipHealth", "flip_health", "FaultNotEffective", "RollbackFailed"]
