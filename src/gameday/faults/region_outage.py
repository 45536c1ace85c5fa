"""The fault "the region is down": reserved concurrency 0 on every function of the region (PutItem,
GetItem and Health), so every request to the region fails (API Gateway answers 500 for a throttled
proxy integration) and its Route 53 health check fails with it.

    with RegionOutage(deployment, "eu-west-1", journal=journal): ...

Why every function, Health included: that is what users live through when a region fails. A flipped
Health proves that routing moves, while the region goes on serving the clients that still reach it;
an outage makes those clients fail, so the client outage (detection, routing change, client caches)
becomes something a game day can measure. The same calls work on AWS, with no code deployed.

GetFunctionConcurrency of each function -> journal {function: {present, value}} -> put 0 on each ->
verify (the region's /health and POST /item answer 5xx) -> yield -> restore each exactly: "none
reserved" is put back as none (DeleteFunctionConcurrency), N as N.
"""

from __future__ import annotations

from typing import Any

from gameday.deployment import Deployment
from gameday.errors import GamedayError
from gameday.faults import route_probe
from gameday.faults.base import JournalledFault
from gameday.faults.concurrency import PROBES, reserved_concurrency, restore_function

FAULT_NAME = "region_outage"
ROLES = ("put", "get", "health")
#: the routes whose answers show the outage: the health check's own, and a write
VERIFY_ROUTES = ("health", "put")


class RegionOutage(JournalledFault):
    """Every function of `region` throttled entirely (reserved concurrency 0)."""

    fault_name = FAULT_NAME

    def __init__(self, deployment: Deployment, region: str, **kwargs: Any) -> None:
        super().__init__(deployment, region, **kwargs)
        self.functions = list(dict.fromkeys(getattr(self.region.functions, role) for role in ROLES))

    def describe(self) -> str:
        return f"region outage (reserved concurrency 0 on {', '.join(self.functions)})"

    def target(self) -> dict[str, Any]:
        return {"region": self.region.name, "function": self.region.functions.health, "functions": self.functions,
                "marked": self.functions, "endpoint": self.clients.endpoint_url}

    def marked_functions(self) -> list[str]:
        return list(self.functions)

    def snapshot(self) -> dict[str, Any]:
        lam = self.clients.lambda_(self.region.name)
        return {"reserved_concurrency": {function: reserved_concurrency(lam, function) for function in self.functions}}

    def change(self) -> dict[str, Any]:
        return {"reserved_concurrency": 0, "functions": len(self.functions)}

    def inject(self) -> None:
        lam = self.clients.lambda_(self.region.name)
        for function in self.functions:
            lam.put_function_concurrency(FunctionName=function, ReservedConcurrentExecutions=0)

    def verify(self) -> None:
        """Each of the region's /health and POST /item answers 5xx instead of the handler's answer."""
        for role in VERIFY_ROUTES:
            method, path, body = PROBES[role]
            route_probe.require_failing(
                self.deployment, self.region.name, method, path, body, poll_s=self.poll_s, budget_s=self.verify_budget_s,
                applied=f"reserved concurrency 0 was applied to {', '.join(self.functions)}",
                evidence=self.verified.setdefault(role, {}))

    @staticmethod
    def restore_entry(entry: dict[str, Any], clients: Any) -> str:
        return restore_entry(entry, clients)


def restore_entry(entry: dict[str, Any], clients: Any) -> str:
    """Put back each function's journalled reserved concurrency exactly; every function is tried
    even when one fails, and the failures are raised together."""
    target = entry["target"]
    lam = clients.lambda_(target["region"])
    details, failures = [], []
    for function, original in entry["before"]["reserved_concurrency"].items():
        try:
            details.append(f"{function}: {restore_function(lam, function, original)}")
        except Exception as error:   # the others are still restored; this one is reported
            failures.append(f"{function}: {type(error).__name__}: {error}")
    if failures:
        raise GamedayError("; ".join(failures))
    return "; ".join(details)
