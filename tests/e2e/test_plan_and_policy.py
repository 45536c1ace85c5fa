"""`gameday plan` changes nothing and names what is missing, permissions included (by
iam:SimulatePrincipalPolicy for the caller's user or role); `gameday policy` is exactly what a run
needs: the catalog's failover passes with credentials holding only that policy (the local cloud
enforces IAM for IAM users' keys), and fails cleanly, nothing left faulted, without any one of its
statements."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from gameday.deployment import load_deployment
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
        assert ("write_impairment: gameday-PutItem, gameday-Health (eu-west-1) execution roles' dynamodb:PutItem: "
                "allowed -> denied (inline policy gameday-write-impairment)") in out
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


def runner_credentials(cloud: LocalCloud, name: str, policy: dict[str, Any],
                       *extra: dict[str, Any]) -> dict[str, str]:
    """Keys of a new IAM user holding `policy` (and, as a second policy, the `extra` statements)."""
    iam = root_client(cloud, "iam")
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="gameday-runner", PolicyDocument=json.dumps(policy))
    if extra:
        iam.put_user_policy(UserName=name, PolicyName="extra", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": list(extra)}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def root_client(cloud: LocalCloud, service: str, region: str = "us-east-1") -> Any:
    return boto3.client(service, region_name=region, endpoint_url=cloud.aws_endpoint_url, **ROOT)


def simulate_own(arn: str) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": "iam:SimulatePrincipalPolicy", "Resource": arn}


def user_arn(name: str) -> str:
    return f"arn:aws:iam::123456789012:user/{name}"


def without(policy: dict[str, Any], statement: dict[str, Any]) -> dict[str, Any]:
    kept = [s for s in policy["Statement"] if s != statement]
    assert len(kept) == len(policy["Statement"]) - 1
    return {**policy, "Statement": kept}


def resources(statement: dict[str, Any]) -> list[str]:
    found = statement["Resource"]
    return found if isinstance(found, list) else [found]


def actions(statement: dict[str, Any]) -> list[str]:
    found = statement["Action"]
    return found if isinstance(found, list) else [found]


RUN = ("-k", "region_failover", "--fail-region", FAILED)


@pytest.fixture(scope="module")
def failover_policy(cloud: LocalCloud, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What `gameday policy` prints for one failover of eu-west-1."""
    folder = tmp_path_factory.mktemp("policy")
    printed = gameday("policy", "--deployment", str(cloud.deployment_path), *RUN, "--out", str(folder / "policy.json"),
                      report_dir=folder)
    assert printed.code == 0, printed.stderr[-2000:]
    assert "iam:SimulatePrincipalPolicy" in printed.stderr    # the plan's own, optional permission, said aside
    policy: dict[str, Any] = json.loads((folder / "policy.json").read_text())
    assert "iam:SimulatePrincipalPolicy" not in json.dumps(policy)   # the run never calls it
    return policy


def test_plan_checks_the_permissions_the_run_needs_before_any_change(
        cloud: LocalCloud, failover_policy: dict[str, Any], tmp_path: Path) -> None:
    plan = ["plan", "--deployment", str(cloud.deployment_path), *RUN]
    since = last_seq(cloud)
    granted = gameday(*plan, report_dir=tmp_path, env=runner_credentials(
        cloud, "planner", failover_policy, simulate_own(user_arn("planner"))))
    assert granted.code == 0, granted.stdout[-2000:] + granted.stderr[-2000:]
    assert f"ok  permissions: {user_arn('planner')} may call the " in granted.stdout
    assert "permissions not checked" not in granted.stderr

    # One statement fewer: the action and the resource it no longer grants, one line, exit 2.
    (update,) = [s for s in failover_policy["Statement"] if s["Action"] == "lambda:UpdateFunctionConfiguration"]
    short = runner_credentials(cloud, "planner-short", without(failover_policy, update),
                               simulate_own(user_arn("planner-short")))
    for command in (plan, ["run", "--dry-run", "--report-dir", str(tmp_path), "--deployment",
                           str(cloud.deployment_path), *RUN]):
        refused = gameday(*command, report_dir=tmp_path, env=short)
        assert refused.code == 2, refused.stdout[-2000:] + refused.stderr[-2000:]
        assert refused.stderr.strip().splitlines()[-1] == (
            f"gameday: plan: permissions: {user_arn('planner-short')} may not call "
            f"lambda:UpdateFunctionConfiguration on {update['Resource']} (implicitDeny)")

    # A principal that may not simulate: said in one line, and the plan goes on.
    unchecked = gameday(*plan, report_dir=tmp_path, env=runner_credentials(cloud, "planner-blind", failover_policy))
    assert unchecked.code == 0, unchecked.stdout[-2000:] + unchecked.stderr[-2000:]
    (warning,) = [line for line in unchecked.stderr.splitlines() if "permissions not checked" in line]
    assert warning.startswith(f"gameday plan: warning: permissions not checked: iam:SimulatePrincipalPolicy on "
                              f"{user_arn('planner-blind')}: AccessDenied: "), warning
    assert "flip_health: gameday-Health (eu-west-1) env status: 200 -> 404" in unchecked.stdout
    assert mutations(cloud, since) == []        # the ground truth: nothing changed


def test_plan_simulates_an_assumed_roles_role(cloud: LocalCloud, failover_policy: dict[str, Any],
                                              tmp_path: Path) -> None:
    iam = root_client(cloud, "iam")
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName="gameday-planner", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    short = without(failover_policy, failover_policy["Statement"][0])
    iam.put_role_policy(RoleName="gameday-planner", PolicyName="runner", PolicyDocument=json.dumps(short))
    iam.put_role_policy(RoleName="gameday-planner", PolicyName="simulate", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [simulate_own(role)]}))
    session = root_client(cloud, "sts").assume_role(RoleArn=role, RoleSessionName="plan")["Credentials"]
    env = {"AWS_ACCESS_KEY_ID": session["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": session["SecretAccessKey"],
           "AWS_SESSION_TOKEN": session["SessionToken"]}
    refused = gameday("plan", "--deployment", str(cloud.deployment_path), *RUN, report_dir=tmp_path, env=env)
    assert refused.code == 2, refused.stdout[-2000:] + refused.stderr[-2000:]
    first = failover_policy["Statement"][0]
    line = refused.stderr.strip().splitlines()[-1]
    assert line.startswith("gameday: plan: permissions: arn:aws:sts::123456789012:assumed-role/gameday-planner/plan "
                           f"may not call {actions(first)[0]} on {resources(first)[0]} (implicitDeny for {role}"), line


def run_state(cloud: LocalCloud) -> dict[str, Any]:
    """What a game day may change, read as root: each function's environment, reserved concurrency
    and tags, and the lease table's items."""
    deployment = load_deployment(Path(cloud.deployment_path))
    state: dict[str, Any] = {}
    for region in deployment.regions:
        lam = root_client(cloud, "lambda", region.name)
        for name in (region.functions.health, region.functions.put, region.functions.get):
            config = lam.get_function_configuration(FunctionName=name)
            state[f"{region.name}/{name}"] = (
                config.get("Environment"), lam.get_function_concurrency(FunctionName=name).get(
                    "ReservedConcurrentExecutions"), lam.list_tags(Resource=config["FunctionArn"]).get("Tags"))
    if deployment.lease is not None:
        state["lease"] = root_client(cloud, "dynamodb", deployment.lease.region).scan(
            TableName=deployment.lease.table)["Items"]
    return state


def test_the_failover_passes_with_only_the_printed_policy_and_fails_cleanly_without_any_statement(
        cloud: LocalCloud, failover_policy: dict[str, Any], tmp_path: Path) -> None:
    run = ["run", "--deployment", str(cloud.deployment_path), *RUN, "--no-html"]
    allowed = gameday(*run, "--report-dir", str(tmp_path / "allowed"), report_dir=tmp_path / "allowed",
                      env=runner_credentials(cloud, "runner", failover_policy))
    assert allowed.code == 0, allowed.stdout[-4000:] + allowed.stderr[-2000:]

    unclean: list[str] = []
    for n, statement in enumerate(failover_policy["Statement"]):
        before = run_state(cloud)
        folder = tmp_path / f"without-{n}"
        denied = gameday(*run, "--report-dir", str(folder), report_dir=folder,
                         env=runner_credentials(cloud, f"runner-{n}", without(failover_policy, statement)))
        errors = [str(row.get("error")) for p in folder.glob("*") if (p / "summary.json").exists()
                  for row in json.loads((p / "summary.json").read_text())["rows"] if row.get("error")]
        said = "\n".join([denied.stdout, denied.stderr, *errors])
        named = [f"not authorized to perform: {a} on resource: {r}" for a in actions(statement)
                 for r in resources(statement)]
        if denied.code == 0:
            unclean.append(f"{statement['Sid']}: the run passed without it")
        elif not any(text in said for text in named):
            unclean.append(f"{statement['Sid']}: no AccessDenied naming its action and resource: "
                           f"{errors or denied.stderr[-600:]}")
        after = run_state(cloud)
        if after != before:
            unclean.append(f"{statement['Sid']}: left {[(k, v) for k, v in after.items() if before.get(k) != v]}")
    assert unclean == [], "\n".join(unclean)


def test_the_whole_catalog_passes_with_only_the_policy_printed_for_it(cloud: LocalCloud, tmp_path: Path) -> None:
    printed = gameday("policy", "--deployment", str(cloud.deployment_path), "--out", str(tmp_path / "policy.json"),
                      report_dir=tmp_path)
    assert printed.code == 0, printed.stderr[-2000:]
    policy = json.loads((tmp_path / "policy.json").read_text())
    before = run_state(cloud)
    folder = tmp_path / "catalog"
    result = gameday("run", "--deployment", str(cloud.deployment_path), "--no-html", "--report-dir", str(folder),
                     report_dir=folder, env=runner_credentials(cloud, "catalog-runner", policy))
    assert result.code == 0, result.stdout[-4000:] + result.stderr[-2000:]
    rows = result.rows()
    assert len(rows) >= 5 and all(row["verdict"] == "pass" for row in rows), [(r["scenario"], r["verdict"]) for r in rows]
    assert "AccessDenied" not in result.stdout + result.stderr
    assert run_state(cloud) == before
