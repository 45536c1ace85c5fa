"""`gameday run -n 2` against one local cloud, which enforces Route 53's per-account token buckets:
both workers share one API budget, so the cloud throttles nothing, and every row reports its
Route 53 figures (Throttling count, calls per AWS-second) and the four moments of its detection."""

from __future__ import annotations

from pathlib import Path

import requests

from tests.support.run_helpers import gameday


def test_two_workers_share_one_budget_and_are_never_throttled(tmp_path: Path) -> None:
    from gameday.localcloud.process.launcher import LocalCloud

    with LocalCloud() as cloud:
        result = gameday("run", "--deployment", str(cloud.deployment_path), "-k", "region_failover", "-n", "2",
                         "--report-dir", str(tmp_path), "--no-html", report_dir=tmp_path)
        from gameday.deployment import load_deployment

        control = load_deployment(cloud.deployment_path).control_url
        counts = requests.get(f"{control}/route53/throttling", timeout=5).json()
    assert result.code == 0, result.stdout[-4000:]
    assert counts["enabled"] is True
    assert counts["calls"].get("GetHealthCheckStatus", 0) > 0
    assert counts["throttled"] == {}, counts
    rows = result.rows()
    assert len(rows) == 2
    for row in rows:
        metrics = row["metrics"]
        assert metrics["route53_throttled"] == 0 and metrics["route53_throttled_total"] == 0
        assert metrics["route53_calls_per_aws_s"] is not None and metrics["route53_api_calls"] > 0
        # the moments are apart: checkers see it first, then the observations' rule, then the status
        assert metrics["checkers_see_failure_s"] <= metrics["observation_rule_s"] <= row["detection_s"]
