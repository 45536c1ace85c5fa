"""Regions known only from what DNS answers, on a whole local cloud.

- An alias A record that answers an address no region's names resolve to: the old harness, which
  read regions from CNAME targets and a handler's header, found no region in the answer and went
  on, and its shift check then held at the first poll. Now steady state fails, saying so.
- The old HTTP shape (CNAME records to the execute-api hosts) still passes, both regions.
"""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from gameday.errors import Category, ScenarioFailed
from gameday.gamedays.failover import RegionFailover
from gameday.gamedays.session import GamedaySession
from gameday.localcloud.process.launcher import LocalCloud

pytestmark = pytest.mark.slow


def _route53(cloud: LocalCloud):  # noqa: ANN202 - a boto3 client
    return boto3.client("route53", region_name="us-east-1", endpoint_url=cloud.description["aws_endpoint_url"],
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def test_an_answer_that_names_no_region_fails_steady_state(tmp_path: Path) -> None:
    with LocalCloud() as cloud:
        desc = cloud.description
        r53 = _route53(cloud)
        records = r53.list_resource_record_sets(HostedZoneId=desc["hosted_zone_id"])["ResourceRecordSets"]
        primary = next(r for r in records if r.get("Failover") == "PRIMARY")
        assert "AliasTarget" in primary                       # the default shape: alias A records
        plain = {k: v for k, v in primary.items() if k != "AliasTarget"}
        plain.update(TTL=60, ResourceRecords=[{"Value": "127.0.0.99"}])
        r53.change_resource_record_sets(HostedZoneId=desc["hosted_zone_id"], ChangeBatch={
            "Changes": [{"Action": "UPSERT", "ResourceRecordSet": plain}]})
        session = GamedaySession.open(cloud.deployment_path, run_dir=tmp_path / "run")
        failover = RegionFailover(session, desc["regions"][0]["name"])
        with pytest.raises(ScenarioFailed) as caught:
            failover.execute()
        assert caught.value.category == Category.STEADY_STATE
        assert "no answer maps to a region" in str(caught.value) and "127.0.0.99" in str(caught.value)
        assert failover.run.marks.get("fault") is None          # no fault was injected on a blind harness


def test_the_old_http_cname_shape_still_fails_over_both_regions(tmp_path: Path) -> None:
    with LocalCloud(tls=False) as cloud:
        assert cloud.description["global_url"].startswith("http://")
        session = GamedaySession.open(cloud.deployment_path, run_dir=tmp_path / "run")
        for region in session.deployment.region_names:
            run = RegionFailover(session, region).execute()
            assert run.survivor not in (None, region)
        assert session.deployment.ca_bundle is None
