"""Route 53 health as AWS reports it: GetHealthCheckStatus observations, rebuilt into the status.

Each observation is what ONE checker saw on its latest probe, with the probe's time as
CheckedTime; it is not that checker's verdict. A checker's verdict flips only after
FailureThreshold consecutive opposite results, and the health check is healthy when MORE than
18% of verdicts are healthy (AWS_FACTS.md). So ">82% of observations failing" comes about
(threshold - 1) x interval before Route 53 declares a region unhealthy. The harness therefore
keeps each checker's (region, IP) sequence of results, by CheckedTime, and replays the threshold
and the 18% rule over it: that rebuilt moment is "Route 53 declared it", what `detection_s`
means. Polls come at a fifth of the check's interval, so every checker's every result is seen;
where two polls were an interval or more apart and a checker's CheckedTime moved by two intervals
in between (a result possibly unseen), the rebuild says so. Observations are classified by their "Success"/"Failure" prefix, never by parsing the rest.

Every wait is a measured poll (tenacity, stop_before_delay) under a budget derived from the
check's own RequestInterval x FailureThreshold and the time scale; every request goes through
the account's shared API budget (gameday.observe.api_budget), and Throttling is absorbed with
backoff (scaled) inside the wait's budget and counted. A budget counts checker intervals: when
the checkers' CheckedTime gaps show them probing slower than their interval (a starved machine,
a regional checker backlog), the wait's interval-derived part grows with their measured pace, at
most LATE_CHECKERS_CAP times, and the wait says so.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from tenacity import RetryCallState
from tenacity.wait import wait_base

from gameday import timing
from gameday.errors import Category, ScenarioError
from gameday.observe import api_budget

HEALTHY_FRACTION = 0.18          # healthy when strictly more than this share of checkers say Success
DETECTION_MARGIN = 2.0           # covers staggered checker phases (up to one more interval) and jitter
DETECTION_SLACK_S = 3.0          # fixed: API latency and a loaded CI machine
CHECKER_JITTER = 0.05            # checkers drift by a few percent of the interval
BACKOFF_FACTOR = 2.0             # after each consecutive Throttling, the next poll waits this much longer
BACKOFF_CAP_INTERVALS = 0.45     # ... but never past half an interval: the rebuild needs every result
LATE_CHECKERS_CAP = 4.0          # checkers probing slower than their interval grow a wait's budget, at most x4
LATE_CHECKER_SAMPLES = 8         # honest CheckedTime gaps needed before the checkers' pace is trusted

ProgressCallback = Callable[[str, int, int, float, float], None]  # (region, failing, total, elapsed, budget)


@dataclass(frozen=True)
class Observation:
    region: str
    ip_address: str
    status: str
    checked_time: str
    ok: bool
    checked_at: float | None = None      # CheckedTime as epoch seconds (None if unparseable)

    @property
    def checker(self) -> tuple[str, str]:
        return (self.region, self.ip_address)


class HealthStatus(NamedTuple):
    """One GetHealthCheckStatus answer. `healthy` is the >18% rule over the OBSERVATIONS (latest
    probe results): it runs ahead of Route 53's status, see the module's doc; None when there are no
    observations yet."""

    healthy: bool | None
    failing: int
    total: int
    observations: list[Observation]


@dataclass
class Poll:
    t: float                   # time.time() of the answer
    elapsed_s: float
    healthy: bool | None       # the observations' >18% rule
    failing: int
    total: int
    rebuilt: bool | None = None    # the status rebuilt from the checkers' sequences (None: throttled)
    new_results: int = 0
    throttled: bool = False


@dataclass
class HealthWait:
    elapsed_s: float           # from the start of the wait to the poll that showed the expected state
    reached_at: float          # time.time() of the poll that showed the rebuilt status (confirmed after, if asked)
    started_at: float
    budget_s: float
    final: HealthStatus
    history: list[Poll] = field(default_factory=list)
    poll_s: float = 0.0
    max_gap_s: float = 0.0     # the largest gap between two polls: the measurement's real resolution
    # The four moments apart (time.time(); the CheckedTime ones are the cloud's clock):
    first_change_at: float | None = None        # CheckedTime of the first result of the expected polarity
    first_change_seen_at: float | None = None   # the poll that first showed one
    declared_at: float | None = None            # CheckedTime of the result that made the rebuilt status flip
    observation_rule_at: float | None = None    # the poll where >82% (or >18%) of observations agreed
    confirmed_at: float | None = None           # the poll where `confirm` (the routing decision) agreed
    interval_s: float = 0.0                     # the check's RequestInterval, scaled
    threshold: int = 0
    missed_results: int = 0                     # results a checker's CheckedTime jumped over
    throttled: int = 0                          # Throttling errors during the wait
    api_calls: int = 0                          # Route 53 requests this process made during the wait
    throttled_total: int = 0                    # Throttling errors this process met so far, every operation
    time_scale: float = 1.0
    flags: list[str] = field(default_factory=list)
    checker_pace_s: float | None = None         # the checkers' measured time between results (None: too few)

    def figures(self, since: float) -> dict[str, Any]:
        """The wait's moments as seconds after `since` (e.g. the fault), and its API figures."""

        def after(t: float | None) -> float | None:
            return None if t is None else round(t - since, 4)

        aws_s = self.elapsed_s / self.time_scale if self.time_scale else 0.0
        return {"checkers_see_failure_s": after(self.first_change_seen_at),
                "checkers_first_failure_checked_s": after(self.first_change_at),
                "declared_checked_s": after(self.declared_at),
                "observation_rule_s": after(self.observation_rule_at),
                "detection_missed_results": self.missed_results,
                "checker_pace_s": None if self.checker_pace_s is None else round(self.checker_pace_s, 4),
                "route53_throttled": self.throttled,
                "route53_throttled_total": self.throttled_total,
                "route53_api_calls": self.api_calls,
                "route53_calls_per_aws_s": round(self.api_calls / aws_s, 3) if aws_s > 0 else None}


class DetectionTimeout(ScenarioError):
    """The health check did not reach the expected state within the budget."""

    category = Category.DETECTION_TIMEOUT

    def __init__(self, message: str, *, health_check_id: str, expected_healthy: bool, budget_s: float,
                 last: HealthStatus | None, history: list[Poll], throttled: int = 0) -> None:
        super().__init__(message)
        self.health_check_id = health_check_id
        self.expected_healthy = expected_healthy
        self.budget_s = budget_s
        self.last = last
        self.history = history
        self.throttled = throttled

    @property
    def observations(self) -> list[Observation]:
        return self.last.observations if self.last else []


class RoutingDidNotFollow(DetectionTimeout):
    """The checkers' results declare the expected state, but the routing decision never followed
    within the budget (e.g. a record that does not carry the health check): DNS did not shift."""

    category = Category.NO_DNS_SHIFT


class Throttled(Exception):
    """Route 53 answered Throttling: this poll saw nothing; the wait backs off and polls again."""


def classify(status_text: str) -> bool:
    """True for a checker reporting Success, False for Failure (by prefix only)."""
    return status_text.strip().lower().startswith("success")


def apply_rule(observations: list[Observation]) -> bool | None:
    """The >18% rule over observations. On latest probe results this is NOT Route 53's status (that
    needs the threshold too: see CheckerSequences); kept for diagnosis and for verdict-shaped input."""
    if not observations:
        return None
    healthy = sum(1 for o in observations if o.ok)
    return healthy / len(observations) > HEALTHY_FRACTION


def _epoch(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class CheckerSequences:
    """Each checker's results by CheckedTime, and the status rebuilt from them.

    The replay starts every checker at the verdict OPPOSITE to the one awaited (a wait is for a
    change: a fault's detection, a recovery), flips a checker after `threshold` consecutive results
    of the awaited polarity (and back after as many of the other), and applies the 18% rule after
    every result in CheckedTime order. For a state that already held before the wait (a steady
    state) this is conservative: it takes `threshold` results to be sure.
    """

    def __init__(self, healthy: bool, threshold: int, interval_s: float) -> None:
        self.target = healthy
        self.threshold = max(1, threshold)
        self.interval_s = interval_s
        self.results: dict[tuple[str, str], list[tuple[float, bool]]] = {}
        self.missed = 0
        # results after which others may be unseen: (checker, CheckedTime) -> how many at most
        self.unseen: dict[tuple[tuple[str, str], float], int] = {}
        self.before_first = 0      # checkers whose first result seen already had the awaited polarity
        # CheckedTime gaps between two results of one checker with no wide poll between them (so no
        # result of that checker fell between them): the checkers' real pace.
        self.paces: list[float] = []
        self._blurred: set[tuple[str, str]] = set()

    def add(self, observations: list[Observation], since_last_poll_s: float | None = None) -> int:
        """Record what is new; the number of new results. `since_last_poll_s` is the gap since the
        previous answered poll: a checker can have probed twice in it (one result unseen) only if the
        gap is at least one interval and its CheckedTime moved by at least two (a checker that is
        merely late moves by more than one interval, but no second result fits)."""
        new = 0
        shortest = self.interval_s * (1 - CHECKER_JITTER)
        wide = since_last_poll_s is not None and since_last_poll_s >= shortest > 0
        if wide:
            self._blurred.update(self.results)
        for o in observations:
            if o.checked_at is None:
                continue
            seq = self.results.setdefault(o.checker, [])
            if seq and o.checked_at <= seq[-1][0]:
                continue
            if seq and o.checker not in self._blurred:
                self.paces.append(o.checked_at - seq[-1][0])
            self._blurred.discard(o.checker)
            if not seq and o.ok is self.target:
                # Its first result seen already has the awaited polarity: up to threshold - 1 more of
                # it may have come before the first poll (the change began before the wait).
                self.unseen[(o.checker, o.checked_at)] = self.threshold - 1
                self.before_first += 1
            if wide and seq and o.checked_at - seq[-1][0] >= 2 * shortest:
                self.missed += 1
                self.unseen[(o.checker, o.checked_at)] = max(1, int((o.checked_at - seq[-1][0]) / shortest) - 1)
            seq.append((o.checked_at, o.ok))
            new += 1
        return new

    def pace_s(self) -> float | None:
        """The checkers' median time between two results (None until enough were seen)."""
        if len(self.paces) < LATE_CHECKER_SAMPLES:
            return None
        return statistics.median(self.paces)

    def first_change(self) -> float | None:
        """CheckedTime of the first result of the awaited polarity."""
        times = [t for seq in self.results.values() for t, ok in seq if ok is self.target]
        return min(times, default=None)

    def declared(self, total: int, *, optimistic: bool = False) -> float | None:
        """CheckedTime at which the rebuilt status first became the awaited one (None: not yet).
        `optimistic`: results that may have gone unseen between two polls count as the awaited
        polarity, which gives the EARLIEST moment the status could have changed (the routing decision
        must then confirm it); otherwise the certain moment, late by up to the unseen results."""
        if total <= 0:
            return None
        verdict = {key: not self.target for key in self.results}
        streak = {key: 0 for key in self.results}
        events = sorted((t, key, ok) for key, seq in self.results.items() for t, ok in seq)
        for t, key, ok in events:
            if ok == verdict[key]:
                streak[key] = 0
            else:
                streak[key] += 1 + (self.unseen.get((key, t), 0) if optimistic and ok is self.target else 0)
                if streak[key] >= self.threshold:
                    verdict[key] = ok
                    streak[key] = 0
            healthy_count = sum(1 for k in verdict if verdict[k]) + (total - len(verdict)) * (not self.target)
            if (healthy_count / total > HEALTHY_FRACTION) is self.target:
                return t
        return None


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


class _Backoff(wait_base):
    """poll_s normally; after Throttling, poll_s x BACKOFF_FACTOR^n with jitter, capped."""

    def __init__(self, poll_s: float, cap_s: float, streak: list[int]) -> None:
        self.poll_s = poll_s
        self.cap_s = max(poll_s, cap_s)
        self.streak = streak

    def __call__(self, retry_state: RetryCallState) -> float:
        n = self.streak[0]
        if n <= 0:
            return self.poll_s
        return min(self.cap_s, self.poll_s * BACKOFF_FACTOR ** n) * random.uniform(0.5, 1.0)


class Route53HealthProbe:
    """Read-only: health of Route 53 health checks through one route53 client, whose requests all go
    through the account's shared API budget."""

    def __init__(self, route53: Any, time_scale: float = 1.0, *,
                 budget: api_budget.SharedBudget | None = None) -> None:
        self.route53 = route53
        self.time_scale = time_scale
        self.budget = api_budget.install(route53, budget) if budget is not None else \
            api_budget.for_client(route53, time_scale)
        self._configs: dict[str, dict[str, Any]] = {}

    def health_check_config(self, hc_id: str) -> dict[str, Any]:
        config = self.route53.get_health_check(HealthCheckId=hc_id)["HealthCheck"]["HealthCheckConfig"]
        self._configs[hc_id] = config
        return config

    def api_figures(self) -> dict[str, Any]:
        """This process's Route 53 requests and Throttling errors so far, and every process's."""
        counts = self.budget.snapshot()
        return {"route53_api_calls_total": counts.calls, "route53_throttled_total": counts.throttled,
                "route53_budget_wait_s": round(counts.waited_s, 4), "shared": self.budget.shared_counts()}

    def health_status(self, hc_id: str) -> HealthStatus:
        """One GetHealthCheckStatus; Throttled if Route 53 refused it."""
        try:
            response = self.route53.get_health_check_status(HealthCheckId=hc_id)
        except Exception as exc:
            if api_budget.is_throttling(exc):
                raise Throttled(str(exc)) from exc
            raise
        observations = []
        for o in response.get("HealthCheckObservations", []):
            report = o.get("StatusReport", {})
            observations.append(Observation(
                region=o.get("Region", ""), ip_address=o.get("IPAddress", ""), status=report.get("Status", ""),
                checked_time=str(report.get("CheckedTime", "")), ok=classify(report.get("Status", "")),
                checked_at=_epoch(report.get("CheckedTime"))))
        failing = sum(1 for o in observations if not o.ok)
        return HealthStatus(apply_rule(observations), failing, len(observations), observations)

    def detection_budget(self, hc_id: str) -> float:
        return detection_budget(self.health_check_config(hc_id), self.time_scale)

    def wait_until(self, hc_id: str, *, healthy: bool, budget_s: float | None = None, poll_s: float | None = None,
                   on_progress: ProgressCallback | None = None, region: str = "",
                   confirm: Callable[[], bool] | None = None) -> HealthWait:
        """Poll until Route 53's status, rebuilt from the checkers' CheckedTime sequences with the
        check's FailureThreshold and the 18% rule, is `healthy` (and `confirm()`, the routing decision,
        agrees, when given); DetectionTimeout (with the last observations) if not within the budget
        (default: derived from the check's own config)."""
        config = self._configs.get(hc_id) or self.health_check_config(hc_id)
        budget_s = detection_budget(config, self.time_scale) if budget_s is None else budget_s
        poll_s = default_poll_interval(config, self.time_scale) if poll_s is None else poll_s
        interval_s = float(config.get("RequestInterval", 30)) * self.time_scale
        threshold = int(config.get("FailureThreshold", 3))
        sequences = CheckerSequences(healthy, threshold, interval_s)
        history: list[Poll] = []
        moments: dict[str, float | None] = {"first_seen": None, "rule": None, "confirmed": None, "declared": None,
                                            "possible": None, "by_routing": None}
        throttle_streak = [0]
        throttled = [0]
        before = self.budget.snapshot()
        started = time.monotonic()
        asked_s = budget_s
        grown_s = [budget_s]
        pace_seen: list[float] = []

        def current_budget() -> float:
            """The asked budget, its interval-derived part grown by the checkers' measured pace."""
            pace = sequences.pace_s()
            if pace is None or pace <= interval_s * (1 + CHECKER_JITTER) or interval_s <= 0:
                return grown_s[0]
            slower = min(LATE_CHECKERS_CAP, pace / interval_s)
            grown = asked_s + (slower - 1) * interval_s * threshold * DETECTION_MARGIN
            if grown > grown_s[0]:
                grown_s[0] = grown
                pace_seen[:] = [pace]
            return grown_s[0]

        def poll() -> HealthStatus:
            try:
                with self.budget.deadline(started + current_budget()):
                    status = self.health_status(hc_id)
            except Throttled:
                throttle_streak[0] += 1
                throttled[0] += 1
                history.append(Poll(time.time(), time.monotonic() - started, None, 0, 0, None, 0, True))
                raise
            throttle_streak[0] = 0
            now = time.time()
            previous = next((p.t for p in reversed(history) if not p.throttled), None)
            new = sequences.add(status.observations, None if previous is None else now - previous)
            if moments["first_seen"] is None and any(o.ok is healthy for o in status.observations):
                moments["first_seen"] = now
            if moments["rule"] is None and status.healthy is healthy:
                moments["rule"] = now
            declared = sequences.declared(status.total)
            if declared is not None and moments["declared"] is None:
                moments["declared"] = now
            possible = sequences.declared(status.total, optimistic=True) if sequences.unseen else None
            if possible is not None and moments["possible"] is None:
                moments["possible"] = now
            elapsed = time.monotonic() - started
            history.append(Poll(now, elapsed, status.healthy, status.failing, status.total,
                                declared is not None if healthy else declared is None, new))
            if on_progress is not None:
                on_progress(region or hc_id, status.failing, status.total, elapsed, current_budget())
            return status

        def reached(status: HealthStatus) -> bool:
            if moments["declared"] is None:
                # Results went unseen (polls too far apart): the threshold may already be met. Then the
                # routing decision, which follows the status, pins the moment, never earlier than the
                # earliest the rebuild allows.
                if moments["possible"] is None or confirm is None or not confirm():
                    return False
                moments["declared"] = moments["by_routing"] = time.time()   # when routing showed it, never earlier
                moments["confirmed"] = time.time()
                return True
            if confirm is not None and moments["confirmed"] is None:
                if not confirm():
                    return False
                moments["confirmed"] = time.time()
            return True

        wait = timing.measured_poll(poll, until=reached, poll_s=poll_s, budget_s=current_budget,
                                    retry_on=(Throttled, api_budget.ApiBudgetExhausted),
                                    wait=_Backoff(poll_s, interval_s * BACKOFF_CAP_INTERVALS, throttle_streak))
        after = self.budget.snapshot()
        budget_s = grown_s[0]
        late = "" if not pace_seen else (
            f"budget grown from {asked_s:.2f} s: the checkers probed every {pace_seen[0]:.3f} s, "
            f"not every {interval_s:.3f} s")
        seen = next((p for p in reversed(history) if not p.throttled), None)
        if not wait.reached or wait.value is None:
            state = "healthy" if healthy else "unhealthy"
            if moments["declared"] is not None:
                state += " as the routing decision shows (the rebuilt status was, but DNS never followed)"
            last = wait.value
            summary = f"{last.failing}/{last.total} observations failing" if last else "no answer"
            extra = f"; {throttled[0]} Throttling errors" if throttled[0] else ""
            failure = RoutingDidNotFollow if moments["declared"] is not None and confirm is not None \
                else DetectionTimeout
            raise failure(
                f"health check {hc_id}{' (' + region + ')' if region else ''} not {state} within "
                f"{budget_s:.2f} s (last: {summary}{extra}{'; ' + late if late else ''})",
                health_check_id=hc_id, expected_healthy=healthy, budget_s=budget_s, last=last,
                history=history, throttled=throttled[0])
        assert seen is not None
        # The moment is the poll that showed the rebuilt status; the routing decision only confirms it.
        reached_at = moments["declared"] if moments["declared"] is not None else seen.t
        flags = []
        if wait.max_gap_s > interval_s * (1 - CHECKER_JITTER):
            flags.append(f"poll gap {wait.max_gap_s:.4f} s is wider than the checkers' interval "
                         f"{interval_s:.4f} s: results may have been missed")
        if wait.max_gap_s > poll_s * 2 + 0.05:
            flags.append(f"poll gap {wait.max_gap_s:.4f} s is wider than the resolution asked for ({poll_s:.4f} s)")
        if moments["by_routing"] is not None:
            flags.append("results went unseen, so the moment is the poll where the rebuilt status could have "
                         "changed and the routing decision showed it had")
        if sequences.missed:
            flags.append(f"{sequences.missed} checker results may have fallen between two polls: the rebuilt "
                         f"moment may be off by up to an interval")
        first = next((p for p in history if not p.throttled), None)
        pace = sequences.pace_s()
        if moments["by_routing"] is None and (sequences.before_first or (first is not None and first.healthy is healthy)):
            # A checker's results before the first poll are unseen (GetHealthCheckStatus shows only the
            # latest): its streak may have begun up to threshold - 1 results earlier, at its own pace.
            flags.append(f"the change was under way before the wait's first poll ({sequences.before_first} checkers' "
                         "first result seen already had the awaited polarity): earlier results went unseen, so the "
                         f"rebuilt moment is an upper bound, late by up to {threshold - 1} of the checkers' results "
                         f"({max(interval_s, pace or 0.0):.4f} s apart)")
        if throttled[0]:
            flags.append(f"{throttled[0]} Throttling errors absorbed")
        if late:
            flags.append(late)
        return HealthWait(
            elapsed_s=reached_at - wait.started_at, reached_at=reached_at, started_at=wait.started_at,
            budget_s=budget_s, final=wait.value, history=history, poll_s=poll_s, max_gap_s=wait.max_gap_s,
            first_change_at=sequences.first_change(), first_change_seen_at=moments["first_seen"],
            declared_at=sequences.declared(wait.value.total), observation_rule_at=moments["rule"],
            confirmed_at=moments["confirmed"], interval_s=interval_s, threshold=threshold,
            missed_results=sequences.missed, throttled=throttled[0], api_calls=after.calls - before.calls,
            throttled_total=after.throttled,
            time_scale=self.time_scale, flags=flags, checker_pace_s=pace)


def health_status(route53: Any, hc_id: str) -> HealthStatus:
    """Module-level shortcut: (healthy, failing, total, observations)."""
    return Route53HealthProbe(route53).health_status(hc_id)
