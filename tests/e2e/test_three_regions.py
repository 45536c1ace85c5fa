"""Three regions on the embedded default: the local cloud, the reference templates and the whole
catalog, every region-parametrised game day run for each of the three regions."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from gameday.faults.journal import Journal
from tests.support.run_helpers import gameday

REGIONS = ("eu-west-1", "us-east-1", "ap-southeast-1")
PER_REGION = ("region_failover", "failover_under_load", "region_outage_under_load", "latency_routing",
              "blind_spot", "replication_pause")


# Three regions are 48 Route 53 checkers, each probing every RequestInterval x time scale: at 0.01
# (0.1 s) they take about a core of the cloud process, while the suite's other worker runs beside it
# on a 2-core machine, and probes late by seconds outrun every detection budget. At 0.02 they
# probe half as often and every budget doubles; the run is otherwise the embedded default.
TIME_SCALE = "0.02"


def test_a_three_region_run_of_the_whole_catalog_passes_on_the_embedded_default(tmp_path: Path) -> None:
    result = gameday("run", "--regions", ",".join(REGIONS), "--time-scale", TIME_SCALE, "--report-dir",
                     str(tmp_path), "--no-html", report_dir=tmp_path, timeout=1500,
                     env={"GAMEDAY_LOAD_ACKED_WRITES": "200"})
    assert result.code == 0, result.stdout[-6000:] + result.stderr[-2000:]
    rows = result.rows()
    failed = [(r["scenario"], r.get("failed_region"), r.get("error")) for r in rows if r["verdict"] != "pass"]
    assert not failed, failed
    by_scenario = Counter(r["scenario"] for r in rows)
    for scenario in PER_REGION:
        assert sorted(r["failed_region"] for r in rows if r["scenario"] == scenario) == sorted(REGIONS), scenario
    assert by_scenario["blind_spot"] == by_scenario["replication_pause"] == len(REGIONS)
    # under latency routing every region has its clients: none is a standby
    assert not any(r["metrics"]["standby"] for r in rows if r["scenario"] == "blind_spot")
    # The harness wrote as a client of the failed region (served by it before the fault), and those
    # clients moved to one of the two survivors.
    for row in rows:
        if row["scenario"] == "region_failover":
            steady = row["evidence"]["steady_state"]
            assert steady["client_of"] == row["failed_region"], steady
            assert steady["dns_regions"][:1] == [row["failed_region"]], steady
            assert row["survivor"] in REGIONS and row["survivor"] != row["failed_region"], row
    entries = Journal(tmp_path / "journal.jsonl").entries()
    assert entries and all(e["state"] == "restored" for e in entries)
