"""UpdateFunctionConfiguration as an AWS client has to call it: one update at a time, applied only
once LastUpdateStatus is Successful (until then invocations keep the previous configuration, and a
second update is refused with ResourceConflictException)."""

from __future__ import annotations

from typing import Any

from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

BUDGET_S = 15.0   # a loaded 2-core machine, not the cloud's scaled 2 s update, sets this


def wait_applied(lam: Any, function: str) -> dict[str, Any]:
    """The configuration once no update of `function` is in progress."""
    retrying = Retrying(stop=stop_after_delay(BUDGET_S), wait=wait_fixed(0.01),
                        retry=retry_if_result(lambda c: c.get("LastUpdateStatus") == "InProgress"))
    return dict(retrying(lambda: lam.get_function_configuration(FunctionName=function)))


def update_configuration(lam: Any, **kwargs: Any) -> dict[str, Any]:
    """Wait for any update in progress, update, and wait until this one is applied."""
    function = kwargs["FunctionName"]
    wait_applied(lam, function)
    response = dict(lam.update_function_configuration(**kwargs))
    wait_applied(lam, function)
    return response
