"""`gameday run` end to end, as a user runs it: a fresh local cloud, every region failed in turn."""

from __future__ import annotations

from pathlib import Path

from tests.support.run_helpers import gameday

# What "within one poll interval" allows beyond the interval itself: the poll's own round
# trip to the AWS endpoint on a loaded 2-core machine.
REQUEST_MARGIN_S = 0.25


def test_fresh_run_fails_over_every_region_and_agrees_with_ground_truth(tmp_path: Path) -> None:
    result = gameday("run", "-k", "region_failover", "--report-dir", str(tmp_path), "--no-html",
                     report_dir=tmp_path)
    assert result.code == 0, result.stdout[-4000:] + result.stderr[-2000:]
    rows = result.rows()
    assert sorted(r["failed_region"] for r in rows) == ["eu-west-1", "us-east-1"]
    for row in rows:
        assert row["verdict"] == "pass", row.get("error")
        assert row["survivor"] not in (None, row["failed_region"])
        written = row["evidence"]["item_by_region"][row["survivor"]]
        assert written["aws:rep:updateregion"] == row["survivor"]
        assert row["evidence"]["item_in_restored_region"]["id"] == written["id"]

        truth = row["evidence"]["ground_truth"]
        poll_s = row["metrics"]["poll_s"]
        # Detection: the harness's poll that first saw "unhealthy" came after the cloud's
        # aggregate changed, and no later than one poll interval (plus the poll's round trip).
        lag = row["marks"]["detected"] - truth["unhealthy_at"]
        assert lag >= 0, (lag, poll_s)
        # Later than one poll only when the wait's polls stalled (a loaded machine), and then the row says so.
        slack = poll_s + REQUEST_MARGIN_S
        if lag > slack:
            flags = row["evidence"].get("detection_flags") or []
            assert any(word in f for f in flags for word in ("poll gap", "fallen between", "went unseen")), \
                (lag, poll_s, flags)
            slack = row["metrics"]["detection_max_poll_gap_s"] * 3 + REQUEST_MARGIN_S
        assert lag <= slack, (lag, poll_s, row["evidence"].get("detection_flags"))
        assert abs(row["detection_s"] - row["metrics"]["truth_detection_s"]) <= slack
        if truth["dns_shift_at"] is not None:
            lag = row["marks"]["dns_shift"] - truth["dns_shift_at"]
            assert 0 <= lag <= poll_s + REQUEST_MARGIN_S, (lag, poll_s)
        else:  # failing the secondary changes no answer: the row says so instead of inventing a shift
            assert row["metrics"].get("dns_shift_s") is None and "dns_shift" not in row["marks"]
            assert "no shift away from it to measure" in row["evidence"]["dns_shift_not_applicable"]
        # the region that served the write is named by its address, as the handlers name none
        assert row["evidence"]["write"]["header_region"] is None

    out = result.stdout
    assert "region_failover" in out and "eu-west-1" in out and "AWS" in out  # the summary table
    run_dir = next(p for p in tmp_path.iterdir() if (p / "summary.md").exists())
    assert "| region_failover |" in (run_dir / "summary.md").read_text()


def test_parallel_workers_against_one_shared_deployment_never_overlap_faults(tmp_path: Path) -> None:
    """-n 2 against one deployment: the destructive scenarios go to one worker (xdist_group +
    loadgroup), so their fault windows never overlap."""
    from gameday.localcloud.process.launcher import LocalCloud

    with LocalCloud() as cloud:
        result = gameday("run", "--deployment", str(cloud.deployment_path), "-k", "region_failover", "-n", "2",
                         "--report-dir",
                         str(tmp_path), "--no-html", report_dir=tmp_path)
    assert result.code == 0, result.stdout[-4000:]
    rows = sorted(result.rows(), key=lambda r: r["marks"]["fault"])
    assert len(rows) == 2
    first, second = rows
    assert first["marks"]["restore"] <= second["marks"]["fault"]


def test_parallel_workers_each_start_their_own_cloud(tmp_path: Path) -> None:
    result = gameday("run", "-k", "region_failover", "-n", "2", "--report-dir", str(tmp_path), "--no-html",
                     report_dir=tmp_path)
    assert result.code == 0, result.stdout[-4000:]
    rows = result.rows()
    assert sorted(r["failed_region"] for r in rows) == ["eu-west-1", "us-east-1"]
    assert all(r["verdict"] == "pass" for r in rows)


def test_a_failover_without_load_is_judged_by_its_slos(tmp_path: Path) -> None:
    """detection takes about 30 AWS-s (10 s checks x 3); an SLO of 5 s fails the scenario as an SLO
    violation, while the SLO on client outage (not measured without load) does not apply."""
    result = gameday("run", "-k", "region_failover", "--fail-region", "eu-west-1", "--slo", "detection_s=5",
                     "--slo", "client_outage_s=1", "--report-dir", str(tmp_path), "--no-html", report_dir=tmp_path)
    assert result.code == 1, result.stdout[-4000:] + result.stderr[-2000:]
    (row,) = result.rows()
    assert row["verdict"] == "fail" and row["failure_category"] == "slo_violation", row.get("error")
    assert "detection_s" in row["error"] and "client_outage_s" not in row["error"]
    assert row["evidence"]["slo"]["targets"] == {"detection_s": 5.0}
    assert row["evidence"]["item_in_restored_region"]   # the game day ran to the end before being judged
