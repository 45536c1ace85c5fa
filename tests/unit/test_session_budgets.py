"""Every budget of a game day comes from the deployment's own timing: its health checks'
RequestInterval and FailureThreshold (GetHealthCheck, read once per session) and its record TTL.
A fixed budget is cut short at time scale 1 with a 60 s TTL and 30 s checks, and too long locally."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gameday.deployment import parse_deployment
from gameday.gamedays.session import GamedaySession


def _deployment(ttl: int, time_scale: float) -> Any:
    regions = [{"name": name, "api_url": f"https://{name}.example.com/prod", "health_check_id": f"hc-{name}",
                "failover_role": role} for name, role in (("eu-west-1", "PRIMARY"), ("us-east-1", "SECONDARY"))]
    return parse_deployment({"gameday_deployment": 1, "target": "local", "domain": "api.example.com",
                             "global_url": "https://api.example.com", "hosted_zone_id": "Z", "routing": "failover",
                             "record_ttl_s": ttl, "time_scale": time_scale,
                             "table": {"name": "T", "version": "2017.11.29"}, "regions": regions})


class _Health:
    def __init__(self, configs: dict[str, dict[str, int]]) -> None:
        self.configs = configs
        self.calls: list[str] = []

    def health_check_config(self, hc_id: str) -> dict[str, int]:
        self.calls.append(hc_id)
        return self.configs[hc_id]


def _session(dep: Any, health: _Health) -> GamedaySession:
    return GamedaySession(deployment=dep, deployment_path=Path("d.yaml"), run_dir=Path("."), clients=SimpleNamespace(),
                          health=health, journal=SimpleNamespace(), resolver=SimpleNamespace())  # type: ignore[arg-type]


@pytest.mark.parametrize(("interval", "threshold", "ttl", "scale"), [(30, 3, 60, 1.0), (10, 2, 300, 1.0), (10, 3, 60, 0.01)])
def test_budgets_follow_interval_threshold_and_ttl(interval: int, threshold: int, ttl: int, scale: float) -> None:
    dep = _deployment(ttl, scale)
    config = {"RequestInterval": interval, "FailureThreshold": threshold}
    health = _Health({"hc-eu-west-1": config, "hc-us-east-1": config})
    session = _session(dep, health)
    detection = session.detection_budget("hc-eu-west-1")
    assert detection >= interval * threshold * scale           # never below Route 53's own pace
    assert session.ttl_s == ttl * scale
    shift = session.dns_shift_budget("hc-eu-west-1", through_resolver=True)
    assert shift == pytest.approx(detection + interval * scale + ttl * scale)
    assert session.follow_budget() == pytest.approx(2 * ttl * scale + interval * scale)
    assert session.all_checks_budget() >= session.dns_shift_budget("hc-us-east-1", through_resolver=False)
    if scale == 1.0:   # the old fixed 5 to 60 s budgets were shorter than AWS's own timing here
        assert shift > 60 and session.follow_budget() > 60
    session.poll_s  # noqa: B018
    assert sorted(set(health.calls)) == ["hc-eu-west-1", "hc-us-east-1"]
    assert len(health.calls) == 2, "GetHealthCheck is read once per check per session"
