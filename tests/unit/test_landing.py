"""Where a write landed: the legacy stamp is polled until it appears, the table's version is checked
against DescribeTable, and a current table's landing rests on the first region seen holding the item,
never on the handler's stamp alone (fake DynamoDB clients, no sockets)."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from gameday.deployment import parse_deployment
from gameday.observe import landing
from tests.unit.test_config import GOOD

A, B = "eu-west-1", "us-east-1"


def deployment(version: str) -> Any:
    data = copy.deepcopy(GOOD)
    data["table"] = {"name": "T", "version": version}
    return parse_deployment(data, source="test")


class FakeDynamo:
    """One region's replica: `script` is the item each successive GetItem returns (the last repeats)."""

    def __init__(self, script: list[dict[str, Any] | None], version: str | None) -> None:
        self.script = script
        self.version = version
        self.reads = 0

    def get_item(self, **_: Any) -> dict[str, Any]:
        item = self.script[min(self.reads, len(self.script) - 1)]
        self.reads += 1
        return {} if item is None else {"Item": item}

    def describe_table(self, **_: Any) -> dict[str, Any]:
        table: dict[str, Any] = {"TableName": "T"}
        if self.version:
            table["GlobalTableVersion"] = self.version
        return {"Table": table}


class FakeClients:
    def __init__(self, replicas: dict[str, FakeDynamo]) -> None:
        self.replicas = replicas

    def dynamodb(self, region: str) -> FakeDynamo:
        return self.replicas[region]


def item(**extra: str) -> dict[str, Any]:
    return {"id": {"N": "7"}, "name": {"S": "x"}, **{k: {"S": v} for k, v in extra.items()}}


def test_the_legacy_stamp_is_polled_until_the_second_write_shows_it() -> None:
    unstamped, stamped = item(), item(**{"aws:rep:updateregion": B})
    clients = FakeClients({A: FakeDynamo([None, stamped], None), B: FakeDynamo([unstamped, unstamped, stamped], None)})
    proved = landing.prove_landing(clients, deployment("2017.11.29"), {"id": 7}, B, time.time(), poll_s=0.001,
                                   budget_s=2)
    assert proved.proof == "aws:rep:updateregion" and proved.region == B and proved.corroborated


def test_a_legacy_stamp_naming_another_region_is_wrong_region() -> None:
    stamped = item(**{"aws:rep:updateregion": A})
    clients = FakeClients({A: FakeDynamo([stamped], None), B: FakeDynamo([stamped], None)})
    with pytest.raises(landing.WrongRegion, match="aws:rep:updateregion='eu-west-1'"):
        landing.prove_landing(clients, deployment("2017.11.29"), {"id": 7}, B, time.time(), poll_s=0.001, budget_s=2)


def test_the_description_must_say_the_tables_real_version() -> None:
    clients = FakeClients({A: FakeDynamo([item()], "2019.11.21"), B: FakeDynamo([item()], "2019.11.21")})
    with pytest.raises(landing.TableVersionMismatch, match="says version 2017.11.29, DescribeTable says eu-west-1: "
                                                           "2019.11.21"):
        landing.check_table_version(clients, deployment("2017.11.29"))
    assert landing.check_table_version(clients, deployment("2019.11.21")) == {A: "2019.11.21", B: "2019.11.21"}


def test_a_current_item_seen_first_elsewhere_is_wrong_region_whatever_its_stamp_says() -> None:
    claim = item(written_region=B)
    clients = FakeClients({A: FakeDynamo([claim], "2019.11.21"), B: FakeDynamo([None, claim], "2019.11.21")})
    with pytest.raises(landing.WrongRegion, match="appeared first in eu-west-1") as info:
        landing.prove_landing(clients, deployment("2019.11.21"), {"id": 7}, B, time.time(), poll_s=0.001, budget_s=2)
    assert info.value.landing is not None and info.value.landing.proof == "first_seen"


def test_a_current_item_seen_first_where_it_was_served_rests_on_first_seen() -> None:
    claim = item(written_region=B)
    clients = FakeClients({A: FakeDynamo([None, claim], "2019.11.21"), B: FakeDynamo([claim], "2019.11.21")})
    proved = landing.prove_landing(clients, deployment("2019.11.21"), {"id": 7}, B, time.time(), poll_s=0.001,
                                   budget_s=2)
    assert (proved.proof, proved.region, proved.corroborated, proved.first_seen) == ("first_seen", B, True, [B])


def test_an_order_not_observed_is_declared_as_the_handlers_claim_only() -> None:
    claim = item(written_region=B)
    clients = FakeClients({A: FakeDynamo([claim], "2019.11.21"), B: FakeDynamo([claim], "2019.11.21")})
    proved = landing.prove_landing(clients, deployment("2019.11.21"), {"id": 7}, B, time.time(), poll_s=0.001,
                                   budget_s=2)
    assert proved.evidence()["proof"] == "handler_claim" and proved.evidence()["corroborated"] is False
