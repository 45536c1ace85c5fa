"""Game day: a region's health check fails; Route 53 and DNS move traffic; writes land in the
surviving region; nothing acknowledged is lost; the region comes back.

Run: `gameday run` (every region in turn) or `gameday run --fail-region eu-west-1`.
"""

from __future__ import annotations

import pytest

from gameday.gamedays.failover import RegionFailover
from gameday.gamedays.scenario_report import reported_scenario


@pytest.mark.failover
@pytest.mark.destructive
def test_region_failover(gameday, failed_region: str) -> None:
    """Flip the region's Health function to 404 and prove the failover, with evidence."""
    failover = RegionFailover(gameday, failed_region)
    with reported_scenario(gameday, failover.run, feature="Region failover",
                           story="A region's health check fails; writes move to the survivor"):
        failover.execute()
