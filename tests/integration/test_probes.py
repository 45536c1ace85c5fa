"""Probes: the >18% rule and budgets (pure), and the polls against the AWS API (moto server):
health-check status polling with its timeout evidence, per-region table reads, DNS answer
waits over a recorded sequence of answers."""

from __future__ import annotations

import uuid

import pytest

from gameday.aws import AwsClients
from gameday.observe.dns_answers import (
    DnsShiftTimeout,
    region_of_answer,
    wait_until_excludes,
    wait_until_includes,
)
from gameday.observe.route53 import (
    DetectionTimeout,
    Observation,
    Route53HealthProbe,
    apply_rule,
    classify,
    detection_budget,
)
from gameday.observe.tables import ItemNotReplicated, read_item_everywhere, wait_until_item_in_region
from tests.support.moto_rig import CREDENTIALS, REGIONS, _aws_credentials, make_deployment  # noqa: F401  (autouse fixture)


def obs(ok: int, failing: int) -> list[Observation]:
    return ([Observation("us-east-1", "1.2.3.4", "Success: HTTP Status Code 200, OK", "t", True)] * ok
            + [Observation("eu-west-1", "1.2.3.5", "Failure: HTTP Status Code 404, Not Found", "t", False)] * failing)


def test_classification_is_by_prefix_only():
    assert classify("Success: HTTP Status Code 200, OK")
    assert classify("success whatever follows")
    assert not classify("Failure: HTTP Status Code 404, Not Found")
    assert not classify("Failure: Success was expected")
    assert not classify("")


@pytest.mark.parametrize("ok,failing,healthy", [
    (16, 0, True), (3, 13, True),      # 18.75% > 18%: still healthy
    (2, 14, False), (0, 16, False),    # 12.5%: unhealthy
    (1, 4, True),                      # 20%
    (9, 41, False),                    # exactly 18% is not MORE than 18%
])
def test_more_than_18_percent_rule(ok, failing, healthy):
    assert apply_rule(obs(ok, failing)) is healthy


def test_no_observations_is_undecided():
    assert apply_rule([]) is None


def test_detection_budget_comes_from_the_check_config():
    config = {"RequestInterval": 10, "FailureThreshold": 3}
    assert detection_budget(config, 0.01) == pytest.approx(10 * 3 * 0.01 * 2.0 + 3.0)
    assert detection_budget({"HealthCheck": {"HealthCheckConfig": config}}, 1.0) == pytest.approx(63.0)
    assert detection_budget({"RequestInterval": 30, "FailureThreshold": 5}, 1.0, margin=1.5, slack_s=0) == 225.0


@pytest.fixture
def deployment(aws_endpoint):
    return make_deployment(aws_endpoint, "http://127.0.0.1:9", "gameday-Health")


def test_health_polls_against_the_api_and_timeout_carries_the_evidence(aws_endpoint, deployment):
    route53 = AwsClients(deployment).route53()
    hc = route53.create_health_check(CallerReference=uuid.uuid4().hex, HealthCheckConfig={
        "Type": "HTTP", "IPAddress": "127.0.0.1", "Port": 9, "ResourcePath": "/prod/health",
        "RequestInterval": 10, "FailureThreshold": 3})["HealthCheck"]["Id"]
    probe = Route53HealthProbe(route53, time_scale=0.01)
    assert probe.detection_budget(hc) == pytest.approx(3.6)
    progress = []
    # moto's stub is one checker whose CheckedTime is the request's time, to the second: the rebuilt
    # status needs FailureThreshold (3) distinct results, so up to ~3 s, more on a loaded machine.
    waited = probe.wait_until(hc, healthy=True, on_progress=lambda *a: progress.append(a), region="eu-west-1",
                              budget_s=10.0)
    assert waited.final.healthy is True and waited.elapsed_s < waited.budget_s
    assert progress and progress[0][0] == "eu-west-1" and progress[0][4] == pytest.approx(10.0)

    with pytest.raises(DetectionTimeout) as info:
        probe.wait_until(hc, healthy=False, budget_s=0.5, poll_s=0.1)
    error = info.value
    assert error.category == "detection_timeout" and error.budget_s == 0.5
    assert error.observations and error.last.total == len(error.observations)
    assert 2 <= len(error.history) <= 6, "polled every 0.1 s and stopped before the 0.5 s budget"
    assert error.history[-1].elapsed_s < 0.5 + 0.3


def test_table_reads_per_region_and_wait_for_an_item(aws_endpoint, deployment):
    clients = AwsClients(deployment)
    for region in REGIONS:
        ddb = clients.dynamodb(region)
        if deployment.table.name not in ddb.list_tables()["TableNames"]:
            ddb.create_table(TableName=deployment.table.name, BillingMode="PAY_PER_REQUEST",
                             AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
                             KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    item_id = uuid.uuid4().int % 10**12
    clients.dynamodb(REGIONS[1]).put_item(TableName=deployment.table.name, Item={
        "id": {"N": str(item_id)}, "name": {"S": "x"}, "aws:rep:updateregion": {"S": REGIONS[1]}})
    views = read_item_everywhere(clients, deployment, {"id": item_id})
    assert views[REGIONS[0]].item is None
    assert views[REGIONS[1]].item == {"id": item_id, "name": "x", "aws:rep:updateregion": REGIONS[1]}
    assert views[REGIONS[1]].written_region == REGIONS[1]

    with pytest.raises(ItemNotReplicated) as info:
        wait_until_item_in_region(clients, deployment, REGIONS[0], {"id": item_id}, budget_s=0.3, poll_s=0.05)
    assert info.value.last[REGIONS[1]].present and not info.value.last[REGIONS[0]].present
    clients.dynamodb(REGIONS[0]).put_item(TableName=deployment.table.name, Item={
        "id": {"N": str(item_id)}, "name": {"S": "x"}, "aws:rep:updateregion": {"S": REGIONS[1]}})
    found = wait_until_item_in_region(clients, deployment, REGIONS[0], {"id": item_id}, budget_s=2, poll_s=0.05)
    assert found.view.written_region == REGIONS[1]


def test_answers_map_to_regions(deployment):
    assert region_of_answer(deployment, "abc123.execute-api.eu-west-1.amazonaws.com.") == "eu-west-1"
    assert region_of_answer(deployment, "ABC.execute-api.us-east-1.amazonaws.com") == "us-east-1"
    assert region_of_answer(deployment, "127.0.0.1") is None  # both api_urls share it: it names neither
    assert region_of_answer(deployment, "example.com") is None


def test_dns_waits_measure_the_shift_and_time_out_with_history(deployment):
    primary = "a.execute-api.eu-west-1.amazonaws.com"
    secondary = "b.execute-api.us-east-1.amazonaws.com"
    answers = iter([[primary], [primary], [], [secondary], [secondary]])
    shift = wait_until_excludes(lambda: next(answers), deployment, "eu-west-1", budget_s=2, poll_s=0.01)
    assert shift.answers == [secondary] and len(shift.history) == 4, "an empty answer is not a shift"
    assert shift.history[-1].regions == ["us-east-1"]
    back = wait_until_includes(lambda: [primary], deployment, "eu-west-1", budget_s=1, poll_s=0.01)
    assert back.elapsed_s < 1
    with pytest.raises(DnsShiftTimeout) as info:
        wait_until_excludes(lambda: [primary], deployment, "eu-west-1", budget_s=0.2, poll_s=0.05)
    assert info.value.last == [primary] and info.value.category == "no_dns_shift"
