"""The reference handlers, called in-process with API Gateway REST proxy events, against a real
AWS endpoint (moto server over HTTP, reached through AWS_ENDPOINT_URL as on a deployed function)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from gameday.localcloud.motoglue.server import AwsEndpoint
from gameday.localcloud.process.context import ControlRoutes
from tests.support.handlers import load_handler

get_item, health, put_item = (load_handler(name) for name in ("get_item", "health", "put_item"))

REGION = "eu-west-1"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = AwsEndpoint("127.0.0.1", 0, ControlRoutes())
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture()
def table(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fresh table and the environment a deployed function sees (region, endpoint, tableName)."""
    name = f"handlers-{uuid.uuid4().hex[:8]}"
    for key, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
                       "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "tableName": name}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("status", raising=False)
    ddb = boto3.resource("dynamodb", region_name=REGION, endpoint_url=endpoint)
    created = ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                               AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
                               BillingMode="PAY_PER_REQUEST")
    yield created
    created.delete()


def post(body: Any, **extra: Any) -> dict[str, Any]:
    raw = body if body is None or isinstance(body, str) else json.dumps(body)
    return put_item.handler({"httpMethod": "POST", "path": "/item", "body": raw, **extra}, None)


def get(item_id: Any) -> dict[str, Any]:
    params = None if item_id is None else {"itemId": item_id}
    return get_item.handler({"httpMethod": "GET", "path": f"/item/{item_id}", "pathParameters": params}, None)


def assert_shape(response: dict[str, Any], status: int) -> Any:
    assert response["statusCode"] == status, response
    # like the article's handlers, nothing in the answer names the region (the harness must not need it)
    assert not any(REGION in str(value) for value in response["headers"].values())
    assert "x-gameday-region" not in {k.lower() for k in response["headers"]}
    assert response["headers"]["Content-Type"] == "application/json"
    return json.loads(response["body"])


def test_put_writes_the_item_with_the_region_stamp(table: Any) -> None:
    body = assert_shape(post({"id": 7, "name": "postman7"}), 200)
    assert body == {}   # what the article's PutItem answers (DocumentClient.put's empty result)
    stored = table.get_item(Key={"id": 7}, ConsistentRead=True)["Item"]
    assert stored == {"id": 7, "name": "postman7", "written_region": REGION}


def test_put_accepts_zero_and_the_largest_38_digit_id(table: Any) -> None:
    assert_shape(post({"id": 0, "name": ""}), 200)
    assert_shape(post({"id": 10**38 - 1, "name": "big"}), 200)


@pytest.mark.parametrize("body, field", [
    (None, "body"), ("", "body"), ("{not json", "body"), ("[1, 2]", "body"), ("null", "body"), ("7", "body"),
    ({}, "id"), ({"name": "x"}, "id"), ({"id": "7", "name": "x"}, "id"), ({"id": 1.5, "name": "x"}, "id"),
    ({"id": 1.0, "name": "x"}, "id"), ({"id": True, "name": "x"}, "id"), ({"id": -1, "name": "x"}, "id"),
    ({"id": None, "name": "x"}, "id"), ({"id": [1], "name": "x"}, "id"), ({"id": 10**38, "name": "x"}, "id"),
    ({"id": 1}, "name"), ({"id": 1, "name": 5}, "name"), ({"id": 1, "name": None}, "name"),
    ({"id": 1, "name": ["a"]}, "name"),
])
def test_put_rejects_bad_input_with_a_400_naming_the_field(table: Any, body: Any, field: str) -> None:
    error = assert_shape(post(body), 400)["error"]
    assert error.startswith(f"{field}:"), error
    assert table.scan()["Items"] == []


def test_put_decodes_a_base64_body_and_rejects_a_broken_one(table: Any) -> None:
    encoded = base64.b64encode(json.dumps({"id": 3, "name": "b64"}).encode()).decode()
    assert_shape(post(encoded, isBase64Encoded=True), 200)
    assert assert_shape(post("%%%", isBase64Encoded=True), 400)["error"].startswith("body:")


def test_put_answers_bodies_that_break_parsers_or_dynamodb_with_a_400(table: Any) -> None:
    cases = {
        "lone surrogate": ('{"id": 1, "name": "\\ud800"}', "name: not a valid Unicode string"),
        "deep nesting": ("[" * 100_000 + "]" * 100_000, "body: JSON nested too deeply"),
        "over 400 KB": (json.dumps({"id": 1, "name": "x" * (400 * 1024)}), "name: the item would be about"),
    }
    for what, (body, expected) in cases.items():
        error = assert_shape(put_item.handler({"httpMethod": "POST", "path": "/item", "body": body}, None), 400)["error"]
        assert error.startswith(expected), (what, error)
    assert table.scan()["Items"] == []


def test_a_body_that_is_not_utf8_is_not_called_bad_base64(table: Any) -> None:
    latin1 = base64.b64encode('{"id": 1, "name": "caf\xe9"}'.encode("latin-1")).decode()
    error = assert_shape(post(latin1, isBase64Encoded=True), 400)["error"]
    assert error.startswith("body: not UTF-8") and "base64" not in error


def test_put_reports_a_failed_write_as_json_not_a_crash(table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("tableName", "no-such-table")
    assert "write failed" in assert_shape(post({"id": 1, "name": "x"}), 500)["error"]


def test_get_returns_the_item_with_numbers_and_replication_attributes(table: Any) -> None:
    table.put_item(Item={"id": 7, "name": "postman7", "aws:rep:updateregion": "us-east-1",
                         "aws:rep:updatetime": json.loads("1573139907.998001", parse_float=__import__("decimal").Decimal),
                         "aws:rep:deleting": False})
    body = assert_shape(get("7"), 200)
    assert body == {"id": 7, "name": "postman7", "aws:rep:updateregion": "us-east-1",
                    "aws:rep:updatetime": 1573139907.998001, "aws:rep:deleting": False}
    assert isinstance(body["id"], int)


def test_get_reads_back_what_put_wrote(table: Any) -> None:
    assert_shape(post({"id": 12, "name": "round trip"}), 200)
    assert assert_shape(get("12"), 200) == {"id": 12, "name": "round trip", "written_region": REGION}


def test_get_missing_item_is_404(table: Any) -> None:
    assert assert_shape(get("404"), 404) == {"error": "item not found"}


@pytest.mark.parametrize("item_id", [None, "", "abc", "-1", "1.5", " 1", "1e3", "9" * 39])
def test_get_rejects_a_bad_item_id_with_400(table: Any, item_id: Any) -> None:
    assert assert_shape(get(item_id), 400)["error"].startswith("itemId:")


def test_get_without_path_parameters_is_400(table: Any) -> None:
    response = get_item.handler({"httpMethod": "GET", "path": "/item/"}, None)
    assert assert_shape(response, 400)["error"].startswith("itemId:")


@pytest.mark.parametrize("status, expected", [(None, 200), ("200", 200), ("404", 404), (" 503 ", 503),
                                              ("abc", 500), ("", 500), ("99", 500)])
def test_health_answers_with_the_status_from_its_environment(
        table: Any, monkeypatch: pytest.MonkeyPatch, status: str | None, expected: int) -> None:
    if status is not None:
        monkeypatch.setenv("status", status)
    response = health.handler({"httpMethod": "GET", "path": "/health"}, None)
    body = assert_shape(response, expected)
    if expected != 500:
        assert body == "all done"
