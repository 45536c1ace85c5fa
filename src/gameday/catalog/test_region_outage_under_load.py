"""Game day: a region really goes down under load. Every function of the region is throttled
(reserved concurrency 0, Health included), so every request to it fails and its health check
fails with it; traffic through the global domain keeps going, as clients that cache DNS records
for their TTL. The client outage (the time clients' requests failed) is split into detection,
routing change and client cache, and checked against the SLOs; nothing acknowledged is lost;
the region's concurrency is put back exactly and it comes back.

Run: `gameday run -k region_outage`; with an SLO: `gameday run -k region_outage --slo client_outage_s=300`.
"""

from __future__ import annotations

import pytest

from gameday.faults.region_outage import RegionOutage
from gameday.gamedays.scenario_report import reported_scenario
from gameday.gamedays.under_load import FailoverUnderLoad, effective_slos


@pytest.mark.failover
@pytest.mark.destructive
def test_region_outage_under_load(gameday, failed_region: str, load_settings, slo_overrides) -> None:
    game = FailoverUnderLoad(gameday, failed_region, load_settings, fault=RegionOutage,
                             slos=effective_slos(gameday.deployment, slo_overrides), scenario="region_outage_under_load")
    with reported_scenario(gameday, game.run, feature="Region outage under load",
                           story="Every request to a region fails; clients are served again once Route 53 and their "
                                 "DNS caches have moved them"):
        game.execute()
