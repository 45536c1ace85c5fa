"""The fault "flip health": set the region's Health function env `status` to 404 (the article's
game-day lever) so Route 53's checkers see the region fail.

    with FlipHealth(deployment, "eu-west-1", clients=clients) as fault:
        ...   # the region answers 404 on /health until the block exits

On the base protocol (faults/base.py): read the configuration -> journal the original value of
`status` (or its absence) -> merge the new value into the environment -> wait for
LastUpdateStatus Successful -> verify /health answers the new status (else FaultNotEffective)
-> yield -> restore exactly (read-merge-write, wait Successful). The write carries the
RevisionId it read; when someone else changed the function meanwhile it is re-read, and the
journal is brought up to date before the next write.
"""

from __future__ import annotations

from typing import Any

from gameday import timing
from gameday.deployment import Deployment
from gameday.errors import FaultNotEffective
from gameday.faults import lambda_env
from gameday.faults.base import JournalledFault
from gameday.faults.journal_file import env_fingerprint
from gameday.observe.pinned_http import GlobalRequestError, PinnedClient

FAULT_NAME = "flip_health"
STATUS_KEY = "status"
HTTP_TIMEOUT_S = (3.05, 5.0)    # connect, read


def _healthy_code(code: int | None) -> bool:
    """What a Route 53 checker counts as healthy: 2xx or 3xx."""
    return code is not None and 200 <= code < 400


class FlipHealth(JournalledFault):
    """One flip of one region's Health function."""

    fault_name = FAULT_NAME

    def __init__(self, deployment: Deployment, region: str, *, status: str = "404",
                 update_budget_s: float = lambda_env.UPDATE_BUDGET_S, **kwargs: Any) -> None:
        super().__init__(deployment, region, **kwargs)
        self.function = self.region.functions.health
        self.status = str(status)
        self.update_budget_s = update_budget_s
        self.original: dict[str, Any] | None = None      # {"present": bool, "value": str | None}
        self._after: dict[str, Any] | None = None

    def target(self) -> dict[str, Any]:
        return {"region": self.region.name, "function": self.function, "endpoint": self.clients.endpoint_url}

    def change(self) -> dict[str, Any]:
        return {STATUS_KEY: self.status}

    def describe(self) -> str:
        return f"{self.function} env {STATUS_KEY}={self.status}"

    def snapshot(self) -> dict[str, Any]:
        env = lambda_env.environment_of(lambda_env.read_configuration(self.clients.lambda_(self.region.name),
                                                                     self.function))
        return self._before(env)

    def _before(self, env: dict[str, str]) -> dict[str, Any]:
        self.original = {"present": STATUS_KEY in env, "value": env.get(STATUS_KEY)}
        return {"variables": {STATUS_KEY: self.original}, "fingerprint": env_fingerprint(env)}

    def apply(self) -> None:
        """Read-merge-write; every read (the first, and each after a conflict) is journalled before
        the write it leads to."""
        def journal(env: dict[str, str]) -> None:
            self.journal_before(self._before(env))

        _, after = lambda_env.merge_environment(
            self.clients.lambda_(self.region.name), self.function, {STATUS_KEY: self.status},
            budget_s=self.update_budget_s, poll_s=self.poll_s, on_read=journal, on_write=self.change_sent)
        self._after = {"fingerprint": env_fingerprint(after)}

    def after(self) -> dict[str, Any] | None:
        return self._after

    def inject_output(self) -> dict[str, Any]:
        return {"region": self.region.name, "function": self.function, "key": STATUS_KEY, "value": self.status,
                "original": self.original}

    def verify(self) -> None:
        """GET /health until it answers the new status; still healthy at the budget -> FaultNotEffective."""
        expected = int(self.status) if self.status.isdigit() else None
        url = self.region.health_url
        # The region's own API host, resolved through the deployment's resolver, TLS verified as
        # every request of the harness is (the local cloud's names exist only in its DNS).
        client = PinnedClient.for_region(self.deployment, self.region.name, timeout=HTTP_TIMEOUT_S)

        def get_status() -> int:
            return client.get("/health").status

        try:
            poll = timing.measured_poll(get_status, until=lambda code: code == expected, poll_s=self.poll_s,
                                        budget_s=self.verify_budget_s, retry_on=(GlobalRequestError,))
        finally:
            client.close()
        code = poll.value if poll.error is None else None
        self.verified = {"url": url, "expected": expected, "answered": code,
                         "error": type(poll.error).__name__ if poll.error else None, **poll.figures()}
        if not poll.reached and _healthy_code(code):
            raise FaultNotEffective(
                f"{self.region.name}: {self.function} env {STATUS_KEY}={self.status} was applied, but {url} "
                f"still answers {code} after {self.verify_budget_s:.1f} s (the Health function ignores its "
                f"environment, or API Gateway invokes another version/alias)")
        # not the expected code, but not healthy either: the region is down as intended

    def undo(self, entry: dict[str, Any]) -> str:
        return lambda_env.restore_entry(entry, self.clients, budget_s=self.update_budget_s, poll_s=self.poll_s)

    @staticmethod
    def restore_entry(entry: dict[str, Any], clients: Any) -> str:
        return lambda_env.restore_entry(entry, clients)


def flip_health(deployment: Deployment, region: str, **kwargs: Any) -> FlipHealth:
    """Convenience: `with flip_health(deployment, "eu-west-1", clients=c): ...`."""
    return FlipHealth(deployment, region, **kwargs)


__all__ = ["FlipHealth", "flip_health", "FAULT_NAME", "STATUS_KEY"]
