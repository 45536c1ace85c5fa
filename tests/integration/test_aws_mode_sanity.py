"""AWS-mode sanity: what would break or mislead a game day on a real account.

- `target: aws` with a time scale below 1, an endpoint URL, or an AWS_ENDPOINT_URL* variable in
  the environment is refused in one line before any AWS call;
- one boto3 Session serves every region;
- journal entries carry the function's ARN; `gameday restore` restores by ARN and refuses a
  function of another account, whatever its name;
- GetFunctionConfiguration's Environment.Error (undecryptable variables) is refused before any
  change.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import requests

from gameday.aws import AwsClients, refuse_endpoint_overrides
from gameday.deployment import parse_deployment
from gameday.errors import UsageError
from gameday.faults import FlipHealth
from gameday.faults.journal import Journal, env_fingerprint, restore_pending
from gameday.faults.lambda_env import EnvironmentUnreadable
from tests.support.lambda_updates import update_configuration
from tests.support.moto_rig import (  # noqa: F401  (_aws_credentials: an autouse fixture)
    REGIONS,
    FunctionUnderTest,
    _aws_credentials,
    lambda_client,
)
from tests.unit.test_config import GOOD

REGION = REGIONS[0]


def aws_description(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    data.update(target="aws", time_scale=1.0, control_url=None, dns_resolver="system")
    data.pop("aws_endpoint_url")
    data.update(changes)
    return data


# -- row 11 -----------------------------------------------------------------------

@pytest.mark.parametrize("changes, named", [
    ({"time_scale": 0.01}, "time_scale: expected 1 with target aws"),
    ({"aws_endpoint_url": "http://127.0.0.1:4566"}, "aws_endpoint_url: expected no aws_endpoint_url with target aws"),
])
def test_target_aws_refuses_a_time_scale_or_an_endpoint(changes: dict[str, Any], named: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_deployment(aws_description(**changes), source="aws.yaml")
    assert named in str(info.value) and "\n" not in str(info.value)
    assert info.value.exit_code == 2


def test_target_aws_loads_with_real_time_and_no_endpoint() -> None:
    dep = parse_deployment(aws_description(), source="aws.yaml")
    assert dep.target == "aws" and dep.time_scale == 1.0 and dep.aws_endpoint_url is None


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"])
def test_an_endpoint_variable_is_refused_with_target_aws_before_any_call(monkeypatch: pytest.MonkeyPatch,
                                                                          variable: str) -> None:
    monkeypatch.setenv(variable, "http://127.0.0.1:1")
    dep = parse_deployment(aws_description(), source="aws.yaml")
    with pytest.raises(UsageError) as info:
        AwsClients(dep)
    assert variable in str(info.value) and "\n" not in str(info.value)
    # a local deployment is reached at its endpoint anyway: the variable is not the description's business
    refuse_endpoint_overrides(parse_deployment(copy.deepcopy(GOOD), source="local.yaml"))


# -- row 14: one Session ------------------------------------------------------------

def test_one_session_serves_every_region(health_function: FunctionUnderTest) -> None:
    clients = AwsClients(health_function.deployment)
    made = [clients.lambda_(r) for r in REGIONS] + [clients.dynamodb(r) for r in REGIONS]
    assert [c.meta.region_name for c in made] == [*REGIONS, *REGIONS]
    assert clients.session(REGIONS[0]) is clients.session(REGIONS[1])
    assert len({id(c._request_signer._credentials) for c in made}) == 1  # credentials resolved once


# -- row 14: journal entries by ARN ---------------------------------------------------------

def test_the_journal_keys_an_injected_fault_by_the_function_arn(health_function: FunctionUnderTest,
                                                               tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    clients = AwsClients(health_function.deployment)
    arn = lambda_client(health_function.endpoint, REGION).get_function_configuration(
        FunctionName=health_function.name)["FunctionArn"]
    with FlipHealth(health_function.deployment, REGION, clients=clients, journal=journal, verify=False):
        (entry,) = journal.pending()
        assert entry["target"]["function_arn"] == arn
        assert entry["target"]["account"] == clients.account_id()


def test_restore_refuses_another_accounts_function_of_the_same_name(health_function: FunctionUnderTest,
                                                                   tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    clients = AwsClients(health_function.deployment)
    lam = lambda_client(health_function.endpoint, REGION)
    ours = lam.get_function_configuration(FunctionName=health_function.name)["FunctionArn"]
    theirs = ours.replace(f":{clients.account_id()}:", ":999999999999:")
    env = health_function.env() or {}
    journal.begin("flip_health", {"region": REGION, "function": health_function.name,
                                  "endpoint": health_function.endpoint, "function_arn": theirs,
                                  "account": "999999999999"},
                  {"variables": {"status": {"present": False, "value": None}}, "fingerprint": env_fingerprint(env)},
                  {"status": "404"})
    before = health_function.env()
    (outcome,) = restore_pending(journal, clients)
    assert not outcome.ok and "999999999999" in outcome.detail and "refused" in outcome.detail
    assert health_function.env() == before, "the same-named function of this account was left alone"
    assert [e["state"] for e in journal.entries()] == ["restore_failed"]


def test_restore_acts_on_the_journalled_arn(health_function: FunctionUnderTest, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    clients = AwsClients(health_function.deployment)
    lam = lambda_client(health_function.endpoint, REGION)
    arn = lam.get_function_configuration(FunctionName=health_function.name)["FunctionArn"]
    before = health_function.env() or {}
    journal.begin("flip_health", {"region": REGION, "function": "renamed-since", "endpoint": health_function.endpoint,
                                  "function_arn": arn, "account": clients.account_id()},
                  {"variables": {"status": {"present": True, "value": before["status"]}},
                   "fingerprint": env_fingerprint(before)}, {"status": "404"})
    update_configuration(lam, FunctionName=health_function.name,
                         Environment={"Variables": {**before, "status": "404"}})
    (outcome,) = restore_pending(journal, clients)
    assert outcome.ok, outcome.detail
    assert health_function.env() == before


# -- row 10: Environment.Error -------------------------------------------------------------

def test_undecryptable_environment_is_refused_before_any_change(health_function: FunctionUnderTest,
                                                                tmp_path: Path) -> None:
    mark = f"{health_function.endpoint}/_gameday/lambda/environment-error"
    body = {"region": REGION, "function": health_function.name}
    assert requests.post(mark, json=body, timeout=5).status_code == 200
    lam = lambda_client(health_function.endpoint, REGION)
    try:
        config = lam.get_function_configuration(FunctionName=health_function.name)
        assert "Variables" not in config["Environment"] and config["Environment"]["Error"]["ErrorCode"]
        revision = config["LastModified"]
        journal = Journal(tmp_path / "journal.jsonl")
        with pytest.raises(EnvironmentUnreadable, match="nothing was changed"):
            with FlipHealth(health_function.deployment, REGION, clients=AwsClients(health_function.deployment),
                            journal=journal, verify=False):
                pytest.fail("the fault must not be injected")
        assert lam.get_function_configuration(FunctionName=health_function.name)["LastModified"] == revision
        assert journal.pending() == []
    finally:
        requests.post(mark, json={**body, "clear": True}, timeout=5)
    assert (health_function.env() or {}).get("SECRET_CANARY", "").startswith("canary-")
