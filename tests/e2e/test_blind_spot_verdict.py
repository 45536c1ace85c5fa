"""The blind-spot game day's verdict, through `gameday run` as a user runs it: a deployment whose
/health is the article's shallow check fails with category blind_spot, naming the check's target
and how long traffic went to a region whose writes failed (the primary) or how long a standby's
writes failed unseen (the secondary, where a failover would send every client); the default deep
/health passes both."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gameday.localcloud.process.launcher import LocalCloud
from tests.e2e.test_broken_deployments import PRIMARY, SECONDARY
from tests.support.run_helpers import gameday

pytestmark = pytest.mark.xdist_group("blind_spot_verdict")


def test_a_shallow_health_check_is_a_blind_spot(tmp_path: Path) -> None:
    with LocalCloud(extra_args=["--health", "shallow"]) as cloud:
        result = gameday("run", "--deployment", str(cloud.deployment_path), "-k", "blind_spot",
                         "--report-dir", str(tmp_path), "--no-html", report_dir=tmp_path)
        roles = _inline_policies(cloud)
    assert result.code == 1, result.stdout[-4000:] + result.stderr[-2000:]
    rows = {r["failed_region"]: r for r in result.rows()}
    assert sorted(rows) == sorted([PRIMARY, SECONDARY])
    for row in rows.values():
        assert row["verdict"] == "fail" and row["failure_category"] == "blind_spot", row.get("error")
        error = row["error"]
        assert "/prod/health" in error and ".execute-api." in error, error     # GetHealthCheck's FQDN and path
        local_s, aws_s = re.search(r"for ([0-9.]+) s \(([0-9]+) s AWS\)", error).groups()
        assert float(local_s) > 0 and abs(int(aws_s) - float(local_s) / 0.01) <= 1, error
        assert row["metrics"]["blind_spot"] is True and row["metrics"]["max_failing_checkers"] == 0
    served, standby = rows[PRIMARY], rows[SECONDARY]
    assert served["metrics"]["failed_writes_to_region"] == served["metrics"]["writes_to_region"] > 0
    assert "traffic kept flowing to " + PRIMARY in served["error"], served["error"]
    assert standby["metrics"]["standby"] is True and standby["metrics"]["writes_to_region"] == 0
    assert f"the standby {SECONDARY}'s writes failed" in standby["error"] and "a failover would send every " \
        "client" in standby["error"], standby["error"]
    assert all("gameday-write-impairment" not in names for names in roles.values()), roles


def test_the_default_deep_health_check_sees_the_writes_fail(tmp_path: Path) -> None:
    with LocalCloud() as cloud:
        result = gameday("run", "--deployment", str(cloud.deployment_path), "-k", "blind_spot",
                         "--report-dir", str(tmp_path), "--no-html", report_dir=tmp_path)
        roles = _inline_policies(cloud)
    assert result.code == 0, result.stdout[-4000:] + result.stderr[-2000:]
    rows = {r["failed_region"]: r for r in result.rows()}
    assert sorted(rows) == sorted([PRIMARY, SECONDARY])
    for row in rows.values():
        assert row["verdict"] == "pass", row.get("error")
        assert row["metrics"]["blind_spot"] is False and row["metrics"]["max_failing_checkers"] > 0
        assert row["findings"][0].startswith("no blind spot"), row["findings"]
    assert rows[SECONDARY]["metrics"]["standby"] is True and rows[PRIMARY]["metrics"]["standby"] is False
    assert all("gameday-write-impairment" not in names for names in roles.values()), roles


def _inline_policies(cloud: LocalCloud) -> dict[str, list[str]]:
    import boto3

    iam = boto3.client("iam", region_name="us-east-1", endpoint_url=cloud.aws_endpoint_url,
                       aws_access_key_id="gameday-test", aws_secret_access_key="gameday-test")
    return {r["RoleName"]: iam.list_role_policies(RoleName=r["RoleName"])["PolicyNames"]
            for r in iam.list_roles()["Roles"]}
