"""Steps every game day shares: categorised failures on the run record, waiting until every region
is healthy, a measured wait for any condition, throttled progress lines, and one recorded write
straight to a region's API.

Public API for teams writing their own game days:

    run = RunRecord(scenario="my_failover", failed_region=region)
    with reported_scenario(session, run, feature=..., story=...), categorised_failures(run):
        with reporting.phase("steady state") as entry:
            entry.update(health=wait_all_healthy(session))
        ...
        raise fail(run, Category.WRONG_REGION, "served by the failed region")
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from gameday import timing
from gameday.errors import Category, ScenarioError, ScenarioFailed
from gameday.gamedays.session import GamedaySession
from gameday.load.global_client import GlobalClient, GlobalRequestError
from gameday.load.traffic import make_event
from gameday.records import RunRecord


def fail(run: RunRecord, category: Category | str, message: str) -> ScenarioFailed:
    """Record a categorised failure on the run; returns the exception to raise."""
    exc = ScenarioFailed(category, message)
    run.fail(exc.category, str(exc))
    return exc


@contextlib.contextmanager
def categorised_failures(run: RunRecord) -> Iterator[None]:
    """Every failure becomes a category on the run (the first one counts): a ScenarioFailed keeps its
    own, a probe's timeout or a fault's error (a ScenarioError) becomes a ScenarioFailed of its
    category, anything else is a harness error and propagates as it is."""
    try:
        yield
    except ScenarioFailed as exc:
        run.fail(exc.category, str(exc))
        raise
    except ScenarioError as exc:
        raise fail(run, exc.category, str(exc)) from exc
    except BaseException as exc:
        run.fail(Category.HARNESS_ERROR, f"{type(exc).__name__}: {exc}")
        raise


def wait_for(condition: Callable[[], Any], *, budget_s: float, poll_s: float,
             on_poll: Callable[[Any], None] | None = None) -> tuple[bool, Any]:
    """Poll `condition` (truthy = done) every poll_s up to budget_s: (reached, last value)."""

    def attempt() -> Any:
        value = condition()
        if on_poll is not None:
            on_poll(value)
        return value

    measured = timing.measured_poll(attempt, until=bool, poll_s=poll_s, budget_s=budget_s)
    return measured.reached, measured.value


def wait_all_healthy(session: GamedaySession, poll_s: float | None = None) -> dict[str, str]:
    """Every region's health check healthy (>18% rule); {region: "healthy/total"}."""
    seen = {}
    for region in session.deployment.regions:
        wait = session.health.wait_until(region.health_check_id, healthy=True, region=region.name,
                                         budget_s=session.detection_budget(region.health_check_id),
                                         poll_s=poll_s if poll_s is not None else session.poll_s,
                                         on_progress=session.progress.health)
        seen[region.name] = f"{wait.final.total - wait.final.failing}/{wait.final.total} healthy"
    return seen


class Throttled:
    """At most one progress line per `interval_s` (a person watching, not a log)."""

    def __init__(self, session: GamedaySession, interval_s: float = 1.0) -> None:
        self._session = session
        self._interval_s = interval_s
        self._last = 0.0

    def say(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self._interval_s:
            self._last = now
            self._session.progress.say(text)


def write_item(client: GlobalClient, item_id: int, name: str) -> dict[str, Any]:
    """POST /item through `client` (a region's API, its host resolved through the deployment's
    resolver, TLS verified): a traffic event (load.traffic.make_event) plus the value written. The
    region that served it is the one its address belongs to."""
    t_start = time.time()
    started = time.perf_counter()
    status, error, served, address = None, None, None, None
    try:
        response = client.post("/item", json={"id": item_id, "name": name})
        status, address = response.status, response.address
        served = response.region or response.address
        ok = response.ok
        error = None if ok else f"HTTP {status}"
    except GlobalRequestError as exc:
        ok, error, address = False, str(exc)[:200], exc.address
    latency = time.perf_counter() - started
    event = make_event(t_start, t_start + latency, "put", ok, status, latency, served, item_id, error,
                       address or client.global_url)
    event["name"] = name
    return event
