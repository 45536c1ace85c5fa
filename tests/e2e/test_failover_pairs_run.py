"""Failover between chosen pairs on the embedded default with three regions: `gameday run
--routing failover_pairs --pairs ...` runs the catalog on that deployment, fails each region in
turn and proves that its clients land in the partner it names, no other survivor; a pair that
fails over elsewhere is named by plan, by discover and by the run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gameday.faults.journal import Journal
from gameday.localcloud.process.launcher import LocalCloud
from tests.e2e.test_broken_deployments import client, description
from tests.support.run_helpers import gameday

PAIRS = {"eu-west-1": "ap-southeast-1", "us-east-1": "eu-west-1", "ap-southeast-1": "eu-west-1"}
PAIRS_TEXT = ",".join(f"{r}:{p}" for r, p in PAIRS.items())
TIME_SCALE = "0.02"   # 48 checkers beside the suite's other worker: see test_three_regions
#: game days whose survivor is the failed region's partner (the others fault every region, or none)
FAILOVERS = ("region_failover", "failover_under_load", "region_outage_under_load", "latency_routing")


def test_the_catalog_passes_and_each_regions_clients_land_in_its_chosen_partner(tmp_path: Path) -> None:
    result = gameday("run", "--regions", ",".join(PAIRS), "--routing", "failover_pairs", "--pairs", PAIRS_TEXT,
                     "--time-scale", TIME_SCALE, "--report-dir", str(tmp_path), "--no-html",
                     report_dir=tmp_path, timeout=1200, env={"GAMEDAY_LOAD_ACKED_WRITES": "200"})
    assert result.code == 0, result.stdout[-6000:] + result.stderr[-2000:]
    rows = result.rows()
    assert all(r["verdict"] == "pass" for r in rows), [(r["scenario"], r.get("error")) for r in rows]
    for scenario in FAILOVERS:
        survivors = {r["failed_region"]: r["survivor"] for r in rows if r["scenario"] == scenario}
        assert survivors == PAIRS, (scenario, survivors)
    # every region down: the latency records fail open, and each pair answers its own region
    (down,) = [r for r in rows if r["scenario"] == "all_regions_down_latency"]
    assert down["metrics"]["fail_open_regions"] == sorted(PAIRS)
    assert {r["scenario"] for r in rows} >= {*FAILOVERS, "blind_spot", "replication_pause"}
    assert all(e["state"] == "restored" for e in Journal(tmp_path / "journal.jsonl").entries())


def test_a_pair_that_fails_over_elsewhere_is_named_by_plan_discover_and_the_run(tmp_path: Path) -> None:
    with LocalCloud(regions=list(PAIRS), routing="failover_pairs", pairs=PAIRS_TEXT,
                    time_scale=float(TIME_SCALE)) as cloud:
        described = description(cloud)
        by_name = {r["name"]: r for r in described["regions"]}
        r53, zone = client(cloud, "route53"), described["hosted_zone_id"]
        pair_name = f"eu-west-1.failover.{described['domain']}."
        listed = r53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
        secondary = next(r for r in listed if r["Name"] == pair_name and r.get("Failover") == "SECONDARY")
        us_primary = next(r for r in listed if r["Name"].startswith("us-east-1.failover.")
                          and r.get("Failover") == "PRIMARY")
        sound = gameday("plan", "--deployment", str(cloud.deployment_path), "-k", "region_failover",
                        report_dir=tmp_path, timeout=300)
        assert sound.code == 0, sound.stdout[-2000:] + sound.stderr[-2000:]
        assert ("ok  routing: failover_pairs: a failed region's clients go to its partner (eu-west-1 -> "
                "ap-southeast-1, us-east-1 -> eu-west-1, ap-southeast-1 -> eu-west-1)") in sound.stdout
        assert "ok  records: api.gameday.test: one latency record per region, each aliasing its failover pair" \
            in sound.stdout
        # eu-west-1's SECONDARY answers with us-east-1 while it still carries its partner's health check
        elsewhere = {**secondary, "AliasTarget": us_primary["AliasTarget"]}
        r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [
            {"Action": "UPSERT", "ResourceRecordSet": elsewhere}]})

        plan = gameday("plan", "--deployment", str(cloud.deployment_path), "-k", "region_failover",
                       report_dir=tmp_path, timeout=300)
        assert plan.code == 2, plan.stdout[-2000:] + plan.stderr[-2000:]
        assert (f"plan: records of {pair_name.rstrip('.')}: the SECONDARY of eu-west-1 answers with "
                f"{by_name['us-east-1']['regional_domain_name']}, not ap-southeast-1's regional domain") \
            in plan.stderr, plan.stderr

        discovered = subprocess.run([sys.executable, "-m", "gameday.cli.main", "discover", "--domain",
                                     described["domain"], "--endpoint-url", cloud.aws_endpoint_url, "--out",
                                     str(tmp_path / "never.yaml")], check=False, capture_output=True, text=True,
                                    timeout=120)
        assert discovered.returncode == 2, discovered.stdout + discovered.stderr
        assert (f"record {pair_name.rstrip('.')} (SECONDARY): health check {by_name['ap-southeast-1']['health_check_id']}, "
                f"not us-east-1's") in discovered.stderr, discovered.stderr
        assert not (tmp_path / "never.yaml").exists()

        run = gameday("run", "--deployment", str(cloud.deployment_path), "-k", "region_failover or latency_routing",
                      "--fail-region", "eu-west-1", "--report-dir", str(tmp_path), "--no-html",
                      report_dir=tmp_path, timeout=600)
        assert run.code != 0, run.stdout[-3000:]
        rows = run.rows()
        assert sorted(r["scenario"] for r in rows) == ["latency_routing", "region_failover"]
        for row in rows:
            assert row["failure_category"] == "wrong_region", (row["scenario"], row.get("error"))
            assert "not its failover partner ap-southeast-1" in row["error"] or \
                "but its failover partner is ap-southeast-1" in row["error"], row["error"]
        assert all(e["state"] == "restored" for e in Journal(tmp_path / "journal.jsonl").entries())


def test_pairs_that_name_no_region_of_the_run_are_refused_before_anything_starts(tmp_path: Path) -> None:
    result = gameday("run", "--regions", ",".join(PAIRS), "--routing", "failover_pairs", "--pairs",
                     "eu-west-1:us-east-1,us-east-1:eu-west-1,ap-southeast-1:sa-east-1", "--report-dir",
                     str(tmp_path), report_dir=tmp_path, timeout=120)
    assert result.code == 2
    assert "--pairs: partner 'sa-east-1' of ap-southeast-1 is not one of the regions" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "journal.jsonl").exists()
