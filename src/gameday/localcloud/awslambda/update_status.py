"""A configuration update takes time, as on Lambda: `LastUpdateStatus` InProgress, then Successful.

Why: on AWS an UpdateFunctionConfiguration is accepted at once but applied a little later. Until
then GetFunctionConfiguration shows the new values with `LastUpdateStatus: InProgress`,
invocations still run with the previous environment, and a second update fails with
`ResourceConflictException` (HTTP 409). A harness that reads the change as effective the moment
it was accepted, or that never waits for Successful before its next write, works against moto
(which applies everything at once) and breaks on AWS. Here every change of a function's
environment stays in progress for the cloud's `lambda_update_s` AWS seconds, scaled.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from moto.awslambda.exceptions import LambdaClientError

_lock = threading.Lock()
_pending: dict[str, tuple[float, dict[str, str]]] = {}   # function ARN -> (monotonic due, variables before)


class UpdateInProgress(LambdaClientError):
    code = 409

    def __init__(self, arn: str) -> None:
        super().__init__("ResourceConflictException",
                         f"The operation cannot be performed at this time. An update is in progress for resource: {arn}")


def _live(arn: str) -> tuple[float, dict[str, str]] | None:
    """The pending update of `arn` (caller holds the lock); a finished one is forgotten."""
    entry = _pending.get(arn)
    if entry is not None and time.monotonic() >= entry[0]:
        del _pending[arn]
        return None
    return entry


def refuse_if_in_progress(fn: Any) -> None:
    """An update while the previous one is in progress: ResourceConflictException, as Lambda answers."""
    arn = str(getattr(fn, "function_arn", ""))
    with _lock:
        if _live(arn) is not None:
            raise UpdateInProgress(arn)


def begin(fn: Any, variables_before: dict[str, str], duration_s: float) -> None:
    """The function's environment changed: invocations keep `variables_before` for `duration_s`."""
    with _lock:
        _pending[str(getattr(fn, "function_arn", ""))] = (time.monotonic() + duration_s, dict(variables_before))


def effective_variables(fn: Any) -> dict[str, str]:
    """The Variables an invocation runs with now: the previous ones while an update is in progress."""
    with _lock:
        entry = _live(str(getattr(fn, "function_arn", "")))
    return dict(entry[1]) if entry is not None else dict(fn.environment_vars or {})


def report(fn: Any, config: dict[str, Any]) -> dict[str, Any]:
    """GetFunctionConfiguration's view: LastUpdateStatus InProgress while the update is pending."""
    with _lock:
        entry = _live(str(getattr(fn, "function_arn", "")))
    if entry is not None and "LastUpdateStatus" in config:
        config["LastUpdateStatus"] = "InProgress"
        config["LastUpdateStatusReason"] = "The function is being updated."
    return config


def forget_all() -> None:
    """When the cloud stops (tests start several clouds in one process)."""
    with _lock:
        _pending.clear()
