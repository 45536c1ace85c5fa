"""`gameday plan` changes nothing and names what is missing; `gameday policy` is exactly what a run
needs: the catalog's failover passes with credentials holding only that policy (the local cloud
enforces IAM for IAM users' keys), and fails cleanly, nothing left faulted, without any one of its
fault's statements."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from gameday.localcloud.process.launcher import LocalCloud
from tests.support.run_helpers import gameday

FAILED = "eu-west-1"
ROOT = {"aws_access_key_id": "gameday-local", "aws_secret_access_key": "gameday-local"}
MUTATIONS = ("lambda_config", "replication_paused", "replication_dropped")


@pytest.fixture(scope="module")
def cloud(module_cloud: LocalCloud) -> LocalCloud:
    return module_cloud


def last_seq(cloud: LocalCloud) -> int:
    events = cloud.events()
    return events[-1]["seq"] if events else 0


def mutations(cloud: LocalCloud, since: int) -> list[dict[str, Any]]:
    return [e for e in cloud.events(since=since) if e["kind"] in MUTATIONS]


def test_plan_prints_each_fault_and_changes_nothing(cloud: LocalCloud, tmp_path: Path) -> None:
    since = last_seq(cloud)
    for command in (["plan"], ["run", "--dry-run", "--report-dir", str(tmp_path)]):
        result = gameday(*command, "--deployment", str(cloud.deployment_path), "-k", "region_failover or blind",
                         report_dir=tmp_path)
        assert result.code == 0, result.stdout[-3000:] + result.stderr[-2000:]
        out = result.stdout
        assert "flip_health: gameday-Health (eu-west-1) env status: 200 -> 404" in out
        assert "throttle_put: gameday-PutItem (eu-west-1) reserved concurrency: none -> 0" in out
        assert "lambda:UpdateFunctionConfiguration" in out and "detect" in out
    assert mutations(cloud, since) == []        # the ground truth: no function, table or replica changed


def test_plan_names_a_missing_function_before_any_change(cloud: LocalCloud, tmp_path: Path) -> None:
    data = yaml.safe_load(Path(cloud.deployment_path).read_text())
    data["regions"][1]["functions"]["health"] = "no-such-Health"
    broken = tmp_path / "deployment.yaml"
    broken.write_text(yaml.safe_dump(data, sort_keys=False))
    result = gameday("plan", "--deployment", str(broken), report_dir=tmp_path)
    assert result.code == 2, result.stdout[-2000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("gameday: plan: function no-such-Health (us-east-1): ResourceNotFoundException"), line


def runner_credentials(cloud: LocalCloud, name: str, policy: dict[str, Any]) -> dict[str, str]:
    iam = boto3.client("iam", region_name="us-east-1", endpoint_url=cloud.aws_endpoint_url, **ROOT)
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="gameday-runner", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def test_the_failover_passes_with_only_the_printed_policy_and_fails_cleanly_without_a_statement(
        cloud: LocalCloud, tmp_path: Path) -> None:
    out = tmp_path / "policy.json"
    printed = gameday("policy", "--deployment", str(cloud.deployment_path), "-k", "region_failover",
                      "--fail-region", FAILED, "--out", str(out), report_dir=tmp_path)
    assert printed.code == 0, printed.stderr[-2000:]
    policy = json.loads(out.read_text())
    run = ["run", "--deployment", str(cloud.deployment_path), "-k", "region_failover", "--fail-region", FAILED,
           "--no-html"]
    allowed = gameday(*run, "--report-dir", str(tmp_path / "allowed"), report_dir=tmp_path / "allowed",
                      env=runner_credentials(cloud, "runner", policy))
    assert allowed.code == 0, allowed.stdout[-4000:] + allowed.stderr[-2000:]

    without = {**policy, "Statement": [s for s in policy["Statement"]
                                       if s["Action"] != "lambda:UpdateFunctionConfiguration"]}
    assert len(without["Statement"]) == len(policy["Statement"]) - 1
    since = last_seq(cloud)
    denied = gameday(*run, "--report-dir", str(tmp_path / "denied"), report_dir=tmp_path / "denied",
                     env=runner_credentials(cloud, "runner-short", without))
    assert denied.code != 0
    (row,) = denied.rows()
    assert "not authorized to perform: lambda:UpdateFunctionConfiguration" in (row.get("error") or ""), row
    assert "function:gameday-Health" in row["error"]
    assert mutations(cloud, since) == []        # refused before anything changed: nothing left faulted
