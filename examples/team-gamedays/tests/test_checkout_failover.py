"""The checkout team's game day: when a region's health check fails, checkout keeps working.

gameday's own failover procedure does the fault, the waits and the evidence (flip the failed
region's Health function to 404, wait for Route 53 and DNS, write an item through the global
domain, restore). This team adds its own check between the DNS shift and that write: the
checkout's health endpoint, called through the global domain as customers call it, is served
by a surviving region. Afterwards it checks where the procedure's write landed.
"""

from __future__ import annotations

import pytest

from gameday import Category, GlobalClient, RegionFailover, RunRecord, ScenarioFailed, reported_scenario

SCENARIO = "checkout_failover"


@pytest.mark.failover
@pytest.mark.destructive
def test_checkout_survives_a_region_failing(gameday, failed_region: str) -> None:
    def checkout_health_during_outage(run: RunRecord) -> None:
        """Runs while the failed region is out of DNS, before the procedure writes."""
        client = GlobalClient.from_deployment(gameday.deployment, dns_mode="ttl")
        try:
            response = client.get("/health")
        finally:
            client.close()
        run.evidence["checkout_health_during_outage"] = {"status": response.status,
                                                         "served_by": response.served_by}
        # ScenarioFailed, not a bare assert: the verdict then carries its category, like the catalog's.
        if response.status != 200:
            raise ScenarioFailed(Category.WRITE_FAILED, f"checkout health answered {response.status} "
                                                        f"from {response.served_by} during the outage")
        if response.region in (None, failed_region):
            raise ScenarioFailed(Category.WRONG_REGION, f"checkout health was served by {response.served_by} "
                                                        f"while {failed_region} was failed")

    failover = RegionFailover(gameday, failed_region, scenario=SCENARIO,
                              between_detection_and_write=checkout_health_during_outage)
    with reported_scenario(gameday, failover.run, feature="Checkout",
                           story="Checkout keeps answering while a region is failed"):
        run = failover.execute()

    # The procedure already proved the write landed in the survivor; the team keeps the evidence.
    assert run.survivor not in (None, failed_region)
    assert run.evidence["item_by_region"][run.survivor] is not None
