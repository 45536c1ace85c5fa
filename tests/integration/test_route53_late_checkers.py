"""Checkers that probe late (a starved machine) against the full local cloud: a detection wait
measures their pace from CheckedTime gaps and grows its budget with it, says so, still pins the
moment Route 53 declared the region against the ground truth, and still times out, within the
grown budget, on a region that never fails."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from gameday.aws import AwsClients
from gameday.deployment import Deployment
from gameday.faults import FlipHealth
from gameday.faults.journal import Journal
from gameday.observe.route53 import DetectionTimeout, Route53HealthProbe, default_poll_interval
from tests.integration.test_route53_moments import RTT_S, primary_of, truth

pytestmark = [pytest.mark.local_only, pytest.mark.destructive]
PACE = 4.0      # every checker probes every 4 intervals: three results need at least 8 intervals


def set_pace(dep: Deployment, pace: float) -> None:
    response = requests.post(f"{dep.control_url}/route53/checkers", json={"pace": pace}, timeout=5)
    assert response.status_code == 200, response.text


@pytest.fixture
def late_checkers(local_cloud: Deployment) -> Iterator[Deployment]:
    set_pace(local_cloud, PACE)
    try:
        yield local_cloud
    finally:
        set_pace(local_cloud, 1.0)


def test_late_checkers_grow_the_budget_and_the_moment_still_holds(late_checkers: Deployment, tmp_path: Path) -> None:
    dep = late_checkers
    clients = AwsClients(dep)
    probe = Route53HealthProbe(clients.route53(), dep.time_scale)
    region = primary_of(dep)
    hc = region.health_check_id
    config = probe.health_check_config(hc)
    poll_s = default_poll_interval(config, dep.time_scale)
    interval_s = float(config["RequestInterval"]) * dep.time_scale
    threshold = int(config["FailureThreshold"])
    probe.wait_until(hc, healthy=True, region=region.name)
    # The interval-derived part alone: on time, threshold results fit in it twice over; at PACE they cannot.
    asked = interval_s * threshold * 2
    _, since = truth(dep, "health_status")
    with FlipHealth(dep, region.name, clients=clients, journal=Journal(tmp_path / "j.jsonl")):
        wait = probe.wait_until(hc, healthy=False, budget_s=asked, poll_s=poll_s, region=region.name)
    statuses, _ = truth(dep, "health_status", since)
    declared = min(e["t"] for e in statuses if e["health_check_id"] == hc and e["healthy"] is False)
    assert wait.elapsed_s > asked, "detection at this pace cannot fit the asked budget"
    assert wait.budget_s > asked
    grown = [f for f in wait.flags if f.startswith(f"budget grown from {asked:.2f} s")]
    assert grown and "the checkers probed every" in grown[0], wait.flags
    imprecise = any("may have fallen between two polls" in f or "results went unseen" in f for f in wait.flags)
    claimed = wait.max_gap_s + RTT_S + (interval_s * PACE if imprecise else 0.0)
    assert 0 <= wait.reached_at - declared <= claimed, (wait.reached_at - declared, wait.flags)
    probe.wait_until(hc, healthy=True, region=region.name)


def test_a_region_that_never_fails_still_times_out_within_the_grown_budget(late_checkers: Deployment) -> None:
    dep = late_checkers
    probe = Route53HealthProbe(AwsClients(dep).route53(), dep.time_scale)
    region = primary_of(dep)
    hc = region.health_check_id
    config = probe.health_check_config(hc)
    interval_s = float(config["RequestInterval"]) * dep.time_scale
    asked = interval_s * int(config["FailureThreshold"]) * 2
    began = time.monotonic()
    with pytest.raises(DetectionTimeout) as timeout:
        probe.wait_until(hc, healthy=False, budget_s=asked, region=region.name)
    took = time.monotonic() - began
    assert "not unhealthy within" in str(timeout.value)
    assert "budget grown from" in str(timeout.value) and "the checkers probed every" in str(timeout.value)
    assert asked < timeout.value.budget_s <= asked * 4
    assert took <= timeout.value.budget_s + RTT_S
