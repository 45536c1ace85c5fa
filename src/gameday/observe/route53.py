"""Route 53 health as its checkers see it: GetHealthCheckStatus and the >18% rule.

Why this rule: Route 53 considers an endpoint healthy when MORE than 18% of its
checkers report it healthy; waiting until every checker says Failure is wrong
(AWS_FACTS.md). Observations are classified by their "Success"/"Failure" prefix,
never by parsing the rest. Every wait is a measured poll (tenacity,
stop_before_delay) under a budget derived from the check's own RequestInterval x
FailureThreshold and the time scale.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from gameday import timing
from gameday.errors import Category, ScenarioError

HEALTHY_FRACTION = 0.18          # healthy when strictly more than this share of checkers say Success
DETECTION_MARGIN = 2.0           # covers staggered checker phases (up to one more interval) and jitter
DETECTION_SLACK_S = 3.0          # fixed: API latency and a loaded CI machine

ProgressCallback = Callable[[str, int, int, float, float], None]  # (region, failing, total, elapsed, budget)


@dataclass(frozen=True)
class Observation:
    region: str
    ip_address: str
    status: str
    checked_time: str
    ok: bool


class HealthStatus(NamedTuple):
    """healthy is None when there are no observations yet (the rule cannot say)."""

    healthy: bool | None
    failing: int
    total: int
    observations: list[Observation]


@dataclass
class Poll:
    t: float                   # time.time() of the answer
    elapsed_s: float
    healthy: bool | None
    failing: int
    total: int


@dataclass
class HealthWait:
    elapsed_s: float           # from the start of the wait to the poll that showed the expected state
    reached_at: float          # time.time() of that poll
    started_at: float
    budget_s: float
    final: HealthStatus
    history: list[Poll] = field(default_factory=list)
    poll_s: float = 0.0
    max_gap_s: float = 0.0     # the largest gap between two polls: the measurement's real resolution


class DetectionTimeout(ScenarioError):
    """The health check did not reach the expected state within the budget."""

    category = Category.DETECTION_TIMEOUT

    def __init__(self, message: str, *, health_check_id: str, expected_healthy: bool, budget_s: float,
                 last: HealthStatus | None, history: list[Poll]) -> None:
        super().__init__(message)
        self.health_check_id = health_check_id
        self.expected_healthy = expected_healthy
        self.budget_s = budget_s
        self.last = last
        self.history = history

    @property
    def observations(self) -> list[Observation]:
        return self.last.observations if self.last else []


def classify(status_text: str) -> bool:
    """True for a checker reporting Success, False for Failure (by prefix only)."""
    return status_text.strip().lower().startswith("success")


def apply_rule(observations: list[Observation]) -> bool | None:
    if not observations:
        return None
    healthy = sum(1 for o in observations if o.ok)
    return healthy / len(observations) > HEALTHY_FRACTION


def _check_config(hc: dict[str, Any]) -> dict[str, Any]:
    """Accept GetHealthCheck's response, its HealthCheck, or the HealthCheckConfig itself."""
    if "HealthCheck" in hc:
        hc = hc["HealthCheck"]
    return hc.get("HealthCheckConfig", hc)


def detection_budget(hc_config: dict[str, Any], time_scale: float, margin: float = DETECTION_MARGIN,
                     slack_s: float = DETECTION_SLACK_S) -> float:
    """RequestInterval x FailureThreshold x time_scale x margin + slack (seconds)."""
    config = _check_config(hc_config)
    interval = float(config.get("RequestInterval", 30))
    threshold = float(config.get("FailureThreshold", 3))
    return interval * threshold * time_scale * margin + slack_s


def default_poll_interval(hc_config: dict[str, Any], time_scale: float) -> float:
    """The poll interval (timing.poll_interval_for) of this check's own RequestInterval."""
    interval = float(_check_config(hc_config).get("RequestInterval", 30))
    return timing.poll_interval_for(interval, time_scale)


class Route53HealthProbe:
    """Read-only: health of Route 53 health checks through one route53 client."""

    def __init__(self, route53: Any, time_scale: float = 1.0) -> None:
        self.route53 = route53
        self.time_scale = time_scale

    def health_check_config(self, hc_id: str) -> dict[str, Any]:
        return self.route53.get_health_check(HealthCheckId=hc_id)["HealthCheck"]["HealthCheckConfig"]

    def health_status(self, hc_id: str) -> HealthStatus:
        response = self.route53.get_health_check_status(HealthCheckId=hc_id)
        observations = [
            Observation(
                region=o.get("Region", ""), ip_address=o.get("IPAddress", ""),
                status=o.get("StatusReport", {}).get("Status", ""),
                checked_time=str(o.get("StatusReport", {}).get("CheckedTime", "")),
                ok=classify(o.get("StatusReport", {}).get("Status", "")),
            )
            for o in response.get("HealthCheckObservations", [])
        ]
        failing = sum(1 for o in observations if not o.ok)
        return HealthStatus(apply_rule(observations), failing, len(observations), observations)

    def detection_budget(self, hc_id: str) -> float:
        return detection_budget(self.health_check_config(hc_id), self.time_scale)

    def wait_until(self, hc_id: str, *, healthy: bool, budget_s: float | None = None, poll_s: float | None = None,
                   on_progress: ProgressCallback | None = None, region: str = "") -> HealthWait:
        """Poll until the >18% rule says `healthy`; DetectionTimeout (with the last observations) if not
        within the budget (default: derived from the check's own config)."""
        if budget_s is None or poll_s is None:
            config = self.health_check_config(hc_id)
            budget_s = detection_budget(config, self.time_scale) if budget_s is None else budget_s
            poll_s = default_poll_interval(config, self.time_scale) if poll_s is None else poll_s
        history: list[Poll] = []
        started = time.monotonic()
        limit = budget_s

        def poll() -> HealthStatus:
            status = self.health_status(hc_id)
            elapsed = time.monotonic() - started
            history.append(Poll(time.time(), elapsed, status.healthy, status.failing, status.total))
            if on_progress is not None:
                on_progress(region or hc_id, status.failing, status.total, elapsed, limit)
            return status

        wait = timing.measured_poll(poll, until=lambda s: s.healthy is healthy, poll_s=poll_s, budget_s=budget_s)
        if not wait.reached or wait.value is None:
            state = "healthy" if healthy else "unhealthy"
            seen = wait.value
            summary = f"{seen.failing}/{seen.total} failing" if seen else "no answer"
            raise DetectionTimeout(
                f"health check {hc_id}{' (' + region + ')' if region else ''} not {state} within "
                f"{budget_s:.2f} s (last: {summary})",
                health_check_id=hc_id, expected_healthy=healthy, budget_s=budget_s, last=seen,
                history=history)
        reached = history[-1]
        return HealthWait(elapsed_s=reached.elapsed_s, reached_at=reached.t, started_at=wait.started_at,
                          budget_s=budget_s, final=wait.value, history=history, poll_s=poll_s,
                          max_gap_s=wait.max_gap_s)


def health_status(route53: Any, hc_id: str) -> HealthStatus:
    """Module-level shortcut: (healthy, failing, total, observations)."""
    return Route53HealthProbe(route53).health_status(hc_id)
