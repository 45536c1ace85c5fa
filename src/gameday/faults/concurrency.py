"""The fault "throttle a function": PutFunctionConcurrency(ReservedConcurrentExecutions=0), so
every invocation is throttled (behind an API Gateway REST proxy the client sees HTTP 500).

    with ThrottleFunction(deployment, "eu-west-1", function="put", journal=journal): ...

Why exact restore matters: reserved concurrency is an account-wide budget. A function that
had none must end with none (DeleteFunctionConcurrency), not with some number; one that had
N must get N back. GetFunctionConcurrency -> journal {present, value} -> put 0 -> verify
(a regional POST /item with an empty body answers 500 instead of the handler's 400, so the
check writes nothing) -> yield -> restore (delete or put back) and check it reads as before.
"""

from __future__ import annotations

from typing import Any

from gameday.deployment import Deployment
from gameday.errors import GamedayError
from gameday.faults import route_probe
from gameday.faults.base import JournalledFault

FAULT_NAME = "function_concurrency"
#: the function role -> the route that invokes it (method, path, JSON body), for the effectiveness check
PROBES: dict[str, tuple[str, str, dict[str, Any] | None]] = {"put": ("POST", "/item", {}), "get": ("GET", "/item/0", None), "health": ("GET", "/health", None)}


def reserved_concurrency(lam: Any, function: str) -> dict[str, Any]:
    """{"present": bool, "value": int | None}: a function without reserved concurrency has none."""
    answer = lam.get_function_concurrency(FunctionName=function)
    value = answer.get("ReservedConcurrentExecutions")
    return {"present": value is not None, "value": value}


class ThrottleFunction(JournalledFault):
    """Reserved concurrency `reserved` (default 0) on the region's `function` role (put/get/health)."""

    fault_name = FAULT_NAME

    def __init__(self, deployment: Deployment, region: str, *, function: str = "put", reserved: int = 0,
                 **kwargs: Any) -> None:
        super().__init__(deployment, region, **kwargs)
        if function not in PROBES:
            raise GamedayError(f"function: expected one of {', '.join(PROBES)}, got {function!r}")
        self.role = function
        self.function: str = getattr(self.region.functions, function)
        self.reserved = int(reserved)
        self.check = self.check and self.reserved == 0   # only "throttled entirely" shows on the route

    def describe(self) -> str:
        return f"{self.function} reserved concurrency {self.reserved}"

    def target(self) -> dict[str, Any]:
        return {"region": self.region.name, "function": self.function, "endpoint": self.clients.endpoint_url}

    def snapshot(self) -> dict[str, Any]:
        return {"reserved_concurrency": reserved_concurrency(self.clients.lambda_(self.region.name), self.function)}

    def change(self) -> dict[str, Any]:
        return {"reserved_concurrency": self.reserved}

    def inject(self) -> None:
        self.clients.lambda_(self.region.name).put_function_concurrency(
            FunctionName=self.function, ReservedConcurrentExecutions=self.reserved)

    def verify(self) -> None:
        """The regional route answers 5xx (throttled) instead of the handler's own answer."""
        method, path, body = PROBES[self.role]
        route_probe.require_failing(
            self.deployment, self.region.name, method, path, body, poll_s=self.poll_s, budget_s=self.verify_budget_s,
            applied=f"{self.function} reserved concurrency {self.reserved} was applied", evidence=self.verified)

    @staticmethod
    def restore_entry(entry: dict[str, Any], clients: Any) -> str:
        return restore_entry(entry, clients)


def restore_entry(entry: dict[str, Any], clients: Any) -> str:
    """Put back the journalled reserved concurrency exactly (delete it when there was none)."""
    target = entry["target"]
    return restore_function(clients.lambda_(target["region"]), target["function"],
                            entry["before"]["reserved_concurrency"])


def restore_function(lam: Any, function: str, original: dict[str, Any]) -> str:
    """Put `original` ({present, value}) back on `function`, then check it reads so."""
    now = reserved_concurrency(lam, function)
    if now == original:
        return "already as before"
    if original["present"]:
        lam.put_function_concurrency(FunctionName=function, ReservedConcurrentExecutions=int(original["value"]))
        detail = f"reserved concurrency {original['value']} put back"
    else:
        lam.delete_function_concurrency(FunctionName=function)
        detail = "reserved concurrency deleted (none before)"
    final = reserved_concurrency(lam, function)
    if final != original:
        raise GamedayError(f"{function}: reserved concurrency reads {final} after restore, expected {original}")
    return detail
