"""Failover between chosen pairs on the embedded default with three regions: `gameday run
--routing failover_pairs --pairs ...` fails each region in turn and proves that its clients'
writes land in the partner it names, no other survivor."""

from __future__ import annotations

from pathlib import Path

from gameday.faults.journal import Journal
from tests.support.run_helpers import gameday

PAIRS = {"eu-west-1": "ap-southeast-1", "us-east-1": "eu-west-1", "ap-southeast-1": "eu-west-1"}
TIME_SCALE = "0.02"   # 48 checkers beside the suite's other worker: see test_three_regions


def test_each_regions_writes_land_in_its_chosen_partner(tmp_path: Path) -> None:
    result = gameday("run", "--regions", ",".join(PAIRS), "--routing", "failover_pairs", "--pairs",
                     ",".join(f"{r}:{p}" for r, p in PAIRS.items()), "--time-scale", TIME_SCALE,
                     "-k", "region_failover or region_outage_under_load", "--report-dir", str(tmp_path), "--no-html",
                     report_dir=tmp_path, timeout=900, env={"GAMEDAY_LOAD_ACKED_WRITES": "200"})
    assert result.code == 0, result.stdout[-6000:] + result.stderr[-2000:]
    rows = result.rows()
    failover = {r["failed_region"]: r for r in rows if r["scenario"] == "region_failover"}
    assert sorted(failover) == sorted(PAIRS)
    assert {region: row["survivor"] for region, row in failover.items()} == PAIRS
    outage = [r for r in rows if r["scenario"] == "region_outage_under_load"]
    assert sorted(r["failed_region"] for r in outage) == sorted(PAIRS)
    assert all(r["verdict"] == "pass" for r in rows), [(r["scenario"], r.get("error")) for r in rows]
    assert all(e["state"] == "restored" for e in Journal(tmp_path / "journal.jsonl").entries())


def test_pairs_that_name_no_region_of_the_run_are_refused_before_anything_starts(tmp_path: Path) -> None:
    result = gameday("run", "--regions", ",".join(PAIRS), "--routing", "failover_pairs", "--pairs",
                     "eu-west-1:us-east-1,us-east-1:eu-west-1,ap-southeast-1:sa-east-1", "--report-dir",
                     str(tmp_path), report_dir=tmp_path, timeout=120)
    assert result.code == 2
    assert "--pairs: partner 'sa-east-1' of ap-southeast-1 is not one of the regions" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "journal.jsonl").exists()
