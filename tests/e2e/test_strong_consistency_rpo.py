"""The RPO-0 game day on local clouds: on a multi-Region strongly consistent table every write the
failing region acknowledged before its outage is read, strongly, from each survivor, and items
written at once from two regions are rejected as conflicts (counted, never lost); on an
eventually consistent table the same game day reports the writes its survivors did not have."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from tenacity import Retrying, stop_after_delay, wait_fixed

from gameday.aws import AwsClients
from gameday.deployment import load_deployment
from gameday.errors import Category, ScenarioFailed
from gameday.gamedays.session import GamedaySession
from gameday.gamedays.strong_consistency import CONFLICT_PAIRS, StrongConsistencyRpo
from gameday.gamedays.under_load import read_items
from gameday.load.traffic import CONFLICT_STATUS, Traffic
from gameday.localcloud.process.launcher import LocalCloud
from gameday.observe.pinned_http import PinnedClient
from tests.support.run_helpers import gameday

pytestmark = pytest.mark.xdist_group("strong_consistency_rpo")   # one strong cloud for the module

EU = ("eu-west-1", "eu-west-2", "eu-west-3")
# AWS seconds an MRSC write is in flight: 1 s at the default scale, so that two writes of an item sent
# at once from two regions always meet, however loaded the machine.
WIDE_COMMIT_S = "100"


def _concurrency(cloud: LocalCloud, region: str, function: str) -> Any:
    lam = boto3.client("lambda", region_name=region, endpoint_url=cloud.aws_endpoint_url,
                       aws_access_key_id="gameday-local", aws_secret_access_key="gameday-local")
    return lam.get_function(FunctionName=function).get("Concurrency")


@pytest.fixture(scope="module")
def strong_cloud() -> Iterator[LocalCloud]:
    with LocalCloud(regions=list(EU), routing="latency",
                    # shallow /health: a deep one writes, and a 1 s commit outlasts Route 53's probe timeout
                    extra_args=["--consistency", "strong", "--mrsc-commit", WIDE_COMMIT_S, "--health", "shallow"]
                    ) as cloud:
        yield cloud


def test_rpo_zero_and_every_conflict_rejected_and_counted(strong_cloud: LocalCloud, tmp_path: Path) -> None:
    cloud = strong_cloud
    session = GamedaySession.open(cloud.deployment_path, run_dir=tmp_path / "run")
    conflicts_before = len(session.ground_truth("write_conflict"))
    game = StrongConsistencyRpo(session, EU[0])
    run = game.execute()
    assert run.category is None, run.message
    assert run.evidence["multi_region_consistency"] == "STRONG"
    assert run.figures["acked_writes"] > 0 and run.figures["rpo_lost_writes"] == 0
    # Both writes of each pair were sent at once and the commit outlasts any skew: one of each was rejected.
    rejected = [e for e in run.traffic if e["status"] == CONFLICT_STATUS]
    assert run.figures["write_conflicts"] == CONFLICT_PAIRS == len(rejected)
    truth = session.ground_truth("write_conflict")[conflicts_before:]
    assert len(truth) == CONFLICT_PAIRS, truth
    assert run.evidence["conflicts"]["wrong"] == {}
    assert run.figures["failback_s"] is not None
    for region in EU:
        functions = session.deployment.region(region).functions
        for name in (functions.put, functions.get, functions.health):
            assert _concurrency(cloud, region, name) is None, (region, name)   # restored exactly


def test_a_conflict_under_load_is_counted_not_lost(strong_cloud: LocalCloud) -> None:
    dep = load_deployment(strong_cloud.deployment_path)
    # Straight to EU[0]'s API: the global domain may send EU[0]'s clients elsewhere while its check recovers.
    traffic = Traffic(PinnedClient.for_region(dep, EU[0], timeout=(3.05, 10.0)), rate=100, write_ratio=1.0,
                      duration_s=0.5)
    contested = [traffic.id_base + n for n in range(10)]      # the traffic's first ten ids
    other = PinnedClient.for_region(dep, EU[1], timeout=(3.05, 10.0))
    with ThreadPoolExecutor(len(contested)) as pool:
        # EU[1] writes them first; each is in flight for its commit (1 s) when the traffic writes it in EU[0].
        earlier = [pool.submit(other.request, "POST", "/item", json={"id": i, "name": "eu-west-2"}) for i in contested]
        for attempt in Retrying(stop=stop_after_delay(0.5), wait=wait_fixed(0.005), reraise=True):
            with attempt:
                assert len(read_items(AwsClients(dep), dep, EU[1], contested, consistent=False)) == len(contested)
        with traffic:
            traffic.wait()
        assert [f.result().status for f in earlier] == [200] * len(contested)
    other.close()
    progress = traffic.progress()
    rejected = sorted(e["item_id"] for e in traffic.events() if e["status"] == CONFLICT_STATUS)
    assert rejected == contested and progress.conflicts == len(contested), traffic.events()[:12]
    acked = traffic.acked_ids()
    assert not set(acked) & set(contested)                    # a rejected write is never acknowledged
    for region in EU:                                         # and nothing acknowledged is lost
        found = read_items(AwsClients(dep), dep, region, [*acked, *contested])
        assert sorted(found) == sorted([*acked, *contested]), region
        assert all(found[i]["name"] == "eu-west-2" for i in contested), region


def test_an_eventual_table_is_reported_with_the_writes_survivors_lacked(tmp_path: Path) -> None:
    # Replication takes 300 AWS s (3 s here): the survivor cannot have the last writes right after the outage.
    with LocalCloud(extra_args=["--replication-delay", "300"]) as cloud:
        session = GamedaySession.open(cloud.deployment_path, run_dir=tmp_path / "run")
        game = StrongConsistencyRpo(session, "eu-west-1", require_strong=False)
        with pytest.raises(ScenarioFailed) as failed:
            game.execute()
        assert failed.value.category == Category.LOST_WRITES
        assert "RPO is not 0" in str(failed.value) and "us-east-1" in str(failed.value)
        assert game.run.figures["rpo_lost_writes"] > 0
        assert game.run.evidence["multi_region_consistency"] == "EVENTUAL"
        functions = session.deployment.region("eu-west-1").functions
        for name in (functions.put, functions.get, functions.health):
            assert _concurrency(cloud, "eu-west-1", name) is None, name   # the outage was restored


def test_the_catalog_on_a_strong_three_region_cloud(tmp_path: Path) -> None:
    # The game days whose verdicts depend on the table's mode (the whole catalog on this cloud: README).
    result = gameday("run", "--regions", ",".join(EU), "--consistency", "strong", "--report-dir", str(tmp_path),
                     "--no-html", "-k", "strong_consistency or replication_pause or region_failover",
                     report_dir=tmp_path)
    assert result.code == 0, result.stdout[-6000:] + result.stderr[-3000:]
    rows = result.rows()
    ours = [r for r in rows if r["scenario"] == "strong_consistency_rpo"]
    assert sorted(r["failed_region"] for r in ours) == sorted(EU)
    for row in ours:
        assert row["verdict"] == "pass" and row["rpo_lost_writes"] == 0, row
    assert {r["scenario"] for r in rows} == {"strong_consistency_rpo", "region_failover"}   # pause: not on MRSC
    assert "is a fault of eventually consistent tables" in result.stdout
