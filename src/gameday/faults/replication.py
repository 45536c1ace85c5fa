"""Replication faults on the embedded local cloud: pause (deliveries to and from a region are
held, then delivered in order on resume, like FIS `aws:dynamodb:global-table-pause-replication`)
and drop (deliveries into a region are discarded: the way to prove the harness sees lost writes).

    with PauseReplication(deployment, "eu-west-1", journal=journal) as fault: ...

Local only: reached over HTTP at the deployment's `control_url` (never by importing
gameday.localcloud). The state before (was the region already paused/dropped?) is read and
journalled before the change; the restore puts back exactly that (resume/undrop only what
this fault changed) on every exit path, and `gameday restore` can do it from the journal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from gameday.deployment import Deployment
from gameday.errors import FaultNotEffective, GamedayError, UsageError
from gameday.faults.base import JournalledFault
from gameday.lazy import lazy_module

if TYPE_CHECKING:
    import requests
else:
    requests = lazy_module("requests")


HTTP_TIMEOUT_S = (3.05, 10.0)
CONTROL_BUDGET_S = 15.0

#: fault name -> (status list that shows it, route that injects, route that undoes)
ACTIONS = {
    "replication_pause": ("paused", "pause", "resume"),
    "replication_drop": ("dropped", "drop", "undrop"),
}


class ControlError(GamedayError):
    """The local cloud's control endpoint refused or did not answer."""


def _control(control_url: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    url = control_url.rstrip("/") + path

    def call() -> Any:
        response = requests.request(method, url, json=body, timeout=HTTP_TIMEOUT_S)
        if response.status_code >= 400:
            raise ControlError(f"{method} {url} answered {response.status_code}: {response.text[:200]}")
        return response.json()

    # a retried call (the control endpoint may still be starting), not a wait
    retrying = Retrying(stop=stop_after_delay(CONTROL_BUDGET_S), wait=wait_fixed(0.1), reraise=True,
                        retry=retry_if_exception_type(requests.ConnectionError))
    return retrying(call)


def replication_status(control_url: str) -> dict[str, Any]:
    """{"paused": [...], "dropped": [...], "pending", "held", "applied", ...} from the local cloud."""
    return _control(control_url, "GET", "/replication/status")


def control_url_of(deployment: Deployment) -> str:
    url = getattr(deployment, "control_url", None)
    if not url:
        raise UsageError("replication faults need the local cloud's control endpoint (deployment control_url); "
                         "on AWS use FIS aws:dynamodb:global-table-pause-replication")
    return url


class _ReplicationFault(JournalledFault):
    def __init__(self, deployment: Deployment, region: str, **kwargs: Any) -> None:
        self.control_url = control_url_of(deployment)
        super().__init__(deployment, region, **kwargs)

    def target(self) -> dict[str, Any]:
        return {"region": self.region.name, "function": "replication", "endpoint": self.clients.endpoint_url,
                "control_url": self.control_url}

    def marked_functions(self) -> list[str]:
        return []   # replication is the local cloud's, reached through its control endpoint: no function to tag

    def snapshot(self) -> dict[str, Any]:
        listed, _, _ = ACTIONS[self.fault_name]
        return {listed: self.region.name in replication_status(self.control_url).get(listed, [])}

    def change(self) -> dict[str, Any]:
        listed, _, _ = ACTIONS[self.fault_name]
        return {listed: True}

    def describe(self) -> str:
        listed, _, _ = ACTIONS[self.fault_name]
        return f"replication {listed}"

    def inject(self) -> None:
        _, inject, _ = ACTIONS[self.fault_name]
        _control(self.control_url, "POST", f"/replication/{inject}", {"region": self.region.name})

    def verify(self) -> None:
        listed, _, _ = ACTIONS[self.fault_name]
        now = replication_status(self.control_url).get(listed, [])
        self.verified = {listed: now}
        if self.region.name not in now:
            raise FaultNotEffective(f"replication {listed} was requested for {self.region.name}, "
                                    f"but the local cloud reports {listed}={now}")

    @staticmethod
    def restore_entry(entry: dict[str, Any], clients: Any) -> str:
        return restore_entry(entry, clients)


class PauseReplication(_ReplicationFault):
    """Hold every replication delivery to and from `region` until the block exits."""

    fault_name = "replication_pause"


class DropReplication(_ReplicationFault):
    """Discard every replication delivery into `region` until the block exits."""

    fault_name = "replication_drop"


def restore_entry(entry: dict[str, Any], clients: Any) -> str:
    """Undo a journalled replication fault: resume/undrop unless the region was already so before."""
    fault = entry.get("fault", "")
    if fault not in ACTIONS:
        raise GamedayError(f"not a replication fault: {fault!r}")
    listed, _, undo = ACTIONS[fault]
    target = entry["target"]
    deployment = getattr(clients, "deployment", None)
    control_url = target.get("control_url") or (deployment.control_url if deployment is not None else None)
    if not control_url:
        raise UsageError(f"{fault}: no control_url to restore through")
    region = target["region"]
    if (entry.get("before") or {}).get(listed):
        return f"{region} was {listed} before the fault: left {listed}"
    answer = _control(control_url, "POST", f"/replication/{undo}", {"region": region})
    now = replication_status(control_url).get(listed, [])
    if region in now:
        raise ControlError(f"{region} still {listed} after {undo}")
    released = answer.get("released") if isinstance(answer, dict) else None
    return f"{region} {undo}d" + (f" ({released} held deliveries released)" if released is not None else "")
