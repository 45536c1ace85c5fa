"""Whether a fault that breaks a route took effect: ask the region's own API until it answers 5xx.

Why the region's own API host (through the deployment's resolver, TLS verified) and not the global
domain: the global domain may already answer from another region, which says nothing about this one.
"""

from __future__ import annotations

from typing import Any

from gameday import timing
from gameday.deployment import Deployment
from gameday.errors import FaultNotEffective
from gameday.observe.pinned_http import GlobalRequestError, PinnedClient

HTTP_TIMEOUT_S = (3.05, 10.0)


def until_failing(deployment: Deployment, region: str, method: str, path: str, body: Any, *,
                  poll_s: float, budget_s: float) -> tuple[timing.Measured[int], list[int]]:
    """(the poll, every status seen): `method path` on `region`'s API until it answers 5xx."""
    seen: list[int] = []
    client = PinnedClient.for_region(deployment, region, timeout=HTTP_TIMEOUT_S)

    def probe() -> int:
        code = client.request(method, path, json=body).status
        seen.append(code)
        return code

    try:
        poll = timing.measured_poll(probe, until=lambda code: code >= 500, poll_s=poll_s, budget_s=budget_s,
                                    retry_on=(GlobalRequestError,))
    finally:
        client.close()
    return poll, seen


def require_failing(deployment: Deployment, region: str, method: str, path: str, body: Any, *, poll_s: float,
                    budget_s: float, applied: str, evidence: dict[str, Any]) -> None:
    """Return once `method path` on `region`'s API answers 5xx; raise FaultNotEffective, naming what
    was `applied`, when it still answers otherwise after the budget. What was seen goes into
    `evidence` either way (the verify phase's output)."""
    url = deployment.region(region).api_url.rstrip("/") + path
    poll, seen = until_failing(deployment, region, method, path, body, poll_s=poll_s, budget_s=budget_s)
    evidence.update({"url": url, "method": method, "answered": poll.value if poll.reached else seen[-1:] or None,
                     **poll.figures()})
    if not poll.reached:
        raise FaultNotEffective(f"{region}: {applied}, but {method} {url} still answers "
                                f"{seen[-1] if seen else 'nothing'} after {budget_s:.1f} s")
