"""Game day under load: traffic through the global domain before, during and after a region's
failover. Nothing acknowledged is lost (RPO 0, missing ids listed otherwise); detection and DNS
shift as in the plain failover; after recovery traffic returns to the region(s) routing names
(with failover routing the primary; a failed SECONDARY never carried traffic, so its clients
never move); client outage, errors, latency before/during/after, replication lag and failback
are measured and checked against the SLOs of the deployment file and --slo / GAMEDAY_SLO.

Run: `gameday run -k failover_under_load`; more writes: GAMEDAY_LOAD_ACKED_WRITES=5000.
"""

from __future__ import annotations

import pytest

from gameday.gamedays.scenario_report import reported_scenario
from gameday.gamedays.under_load import FailoverUnderLoad, effective_slos


@pytest.mark.failover
@pytest.mark.destructive
def test_failover_under_load(gameday, failed_region: str, load_settings, slo_overrides) -> None:
    game = FailoverUnderLoad(gameday, failed_region, load_settings,
                             slos=effective_slos(gameday.deployment, slo_overrides))
    with reported_scenario(gameday, game.run, feature="Failover under load",
                           story="Traffic keeps flowing through a region's failover; no acknowledged write is lost"):
        game.execute()
