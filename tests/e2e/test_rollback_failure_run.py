"""A restore refused mid-run: the runner's permission to update the Health function is denied (an
explicit IAM Deny added while the fault is in place, as a tightened permission boundary or SCP
would). The run exits 5 naming what was not restored, the journal keeps the entry pending, and
`gameday restore`, once the permission is back, puts the environment back exactly."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from gameday.faults.journal_file import Journal
from gameday.localcloud.process.launcher import LocalCloud
from tests.support.run_helpers import RunResult, ensure_stopped, gameday, popen_gameday

FAILED = "eu-west-1"
HEALTH = "gameday-Health"
ROOT = {"aws_access_key_id": "gameday-local", "aws_secret_access_key": "gameday-local"}
RUNNER = "gameday-rollback-runner"
DENY = "deny-health-updates"


@pytest.fixture(scope="module")
def cloud(module_cloud: LocalCloud) -> LocalCloud:
    return module_cloud


def aws(cloud: LocalCloud, service: str, region: str = FAILED) -> Any:
    return boto3.client(service, region_name=region, endpoint_url=cloud.aws_endpoint_url, **ROOT)


def health_config(cloud: LocalCloud) -> dict[str, Any]:
    got = aws(cloud, "lambda").get_function(FunctionName=HEALTH)
    return {"env": (got["Configuration"].get("Environment") or {}).get("Variables"),
            "marks": {k: v for k, v in (got.get("Tags") or {}).items() if k.startswith("gameday:")}}


def runner_env(cloud: LocalCloud, state_dir: Path) -> dict[str, str]:
    iam = aws(cloud, "iam", "us-east-1")
    iam.create_user(UserName=RUNNER)
    iam.put_user_policy(UserName=RUNNER, PolicyName="everything", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName=RUNNER)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            "GAMEDAY_STATE_DIR": str(state_dir)}


def deny_health_updates(cloud: LocalCloud) -> None:
    arn = aws(cloud, "lambda").get_function_configuration(FunctionName=HEALTH)["FunctionArn"]
    aws(cloud, "iam", "us-east-1").put_user_policy(UserName=RUNNER, PolicyName=DENY, PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "lambda:UpdateFunctionConfiguration",
                                                  "Resource": arn}]}))


def health_flips(cloud: LocalCloud, since: int) -> list[dict[str, Any]]:
    return [e for e in cloud.events(since=since, kind="lambda_config")
            if e["region"] == FAILED and "status" in e["keys_changed"]]


def test_a_refused_restore_exits_5_keeps_the_entry_and_gameday_restore_repairs_it(cloud: LocalCloud,
                                                                                   tmp_path: Path) -> None:
    before = health_config(cloud)
    env = runner_env(cloud, tmp_path / "state")
    events = cloud.events()
    since = events[-1]["seq"] if events else 0
    report_dir = tmp_path / "r"
    proc = popen_gameday("run", "--deployment", str(cloud.deployment_path), "-k", "region_failover",
                         "--fail-region", FAILED, "--report-dir", str(report_dir), "--no-html", env=env)
    try:
        deadline = time.monotonic() + 120
        while not health_flips(cloud, since) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        assert health_flips(cloud, since), proc.communicate(timeout=60) if proc.poll() is not None else "no fault"
        deny_health_updates(cloud)
        out, err = proc.communicate(timeout=300)
    finally:
        ensure_stopped(proc)
    result = RunResult(proc.returncode, out, err, report_dir)
    assert result.code == 5, out[-3000:] + err[-2000:]
    (row,) = result.rows()
    assert row["failure_category"] == "rollback_failure", row.get("error")
    assert HEALTH in row["error"] and FAILED in row["error"] and "AccessDenied" in row["error"], row["error"]
    assert "gameday restore" in row["error"]
    assert health_config(cloud)["env"] != before["env"]          # still faulted: nothing put it back
    (journal,) = report_dir.glob("**/journal.jsonl")
    (pending,) = Journal(journal).pending()
    assert pending["state"] == "restore_failed" and pending["target"]["function"] == HEALTH
    assert "AccessDenied" in (pending.get("error") or ""), pending

    aws(cloud, "iam", "us-east-1").delete_user_policy(UserName=RUNNER, PolicyName=DENY)
    repaired = gameday("restore", "--journal", str(journal), "--deployment", str(cloud.deployment_path),
                       report_dir=tmp_path, env=env)
    assert repaired.code == 0, repaired.stdout[-2000:] + repaired.stderr[-2000:]
    assert health_config(cloud) == before
    assert not Journal(journal).pending()
