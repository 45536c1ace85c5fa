"""The DynamoDB global-table APIs the local cloud adds to moto: shapes and AWS-shaped errors.

Through boto3 over HTTP against an AWS endpoint with global tables (two regions).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.cloud_rigs import dynamodb_clients, global_tables_endpoint

REGIONS = ["eu-west-1", "us-east-1", "us-west-2"]
A, B, C = REGIONS
STREAMS = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with global_tables_endpoint(REGIONS) as url:
        yield url


@pytest.fixture
def ddb(endpoint: str) -> Any:
    return dynamodb_clients(endpoint)


def make_table(ddb: Any, regions: list[str], streams: dict[str, Any] | None = STREAMS, key: str = "id") -> str:
    name = f"api-{uuid.uuid4().hex[:10]}"
    for region in regions:
        kwargs: dict[str, Any] = {"TableName": name, "BillingMode": "PAY_PER_REQUEST",
                                  "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}],
                                  "AttributeDefinitions": [{"AttributeName": key, "AttributeType": "S"}]}
        if streams:
            kwargs["StreamSpecification"] = streams
        ddb(region).create_table(**kwargs)
    return name


def error_code(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def group(*regions: str) -> list[dict[str, str]]:
    return [{"RegionName": r} for r in regions]


def test_create_describe_list_update_legacy_global_table(ddb: Any) -> None:
    name = make_table(ddb, [A, B, C])
    created = ddb(A).create_global_table(GlobalTableName=name, ReplicationGroup=group(A, B))["GlobalTableDescription"]
    assert created["GlobalTableName"] == name
    assert created["GlobalTableStatus"] == "ACTIVE"
    assert created["GlobalTableArn"].endswith(f":global-table/{name}")
    assert [r["RegionName"] for r in created["ReplicationGroup"]] == [A, B]
    described = ddb(B).describe_global_table(GlobalTableName=name)["GlobalTableDescription"]
    assert described["ReplicationGroup"] == created["ReplicationGroup"]

    listed = ddb(A).list_global_tables()["GlobalTables"]
    assert {"GlobalTableName": name, "ReplicationGroup": group(A, B)} in listed
    assert name not in [t["GlobalTableName"] for t in ddb(A).list_global_tables(RegionName=C)["GlobalTables"]]

    updated = ddb(A).update_global_table(GlobalTableName=name, ReplicaUpdates=[{"Create": {"RegionName": C}}])
    assert [r["RegionName"] for r in updated["GlobalTableDescription"]["ReplicationGroup"]] == [A, B, C]
    removed = ddb(A).update_global_table(GlobalTableName=name, ReplicaUpdates=[{"Delete": {"RegionName": B}}])
    assert [r["RegionName"] for r in removed["GlobalTableDescription"]["ReplicationGroup"]] == [A, C]
    assert ddb(B).describe_table(TableName=name)["Table"]["TableName"] == name  # legacy: the table stays
    assert "GlobalTableVersion" not in ddb(A).describe_table(TableName=name)["Table"]


def test_create_global_table_errors_as_aws(ddb: Any) -> None:
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    code, message = error_code(ddb(A).create_global_table, GlobalTableName=missing, ReplicationGroup=group(A, B))
    assert code == "TableNotFoundException" and missing in message

    no_streams = make_table(ddb, [A, B], streams=None)
    code, message = error_code(ddb(A).create_global_table, GlobalTableName=no_streams, ReplicationGroup=group(A, B))
    assert code == "ValidationException" and "NEW_AND_OLD_IMAGES" in message

    keys_only = make_table(ddb, [A, B], streams={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})
    code, _ = error_code(ddb(A).create_global_table, GlobalTableName=keys_only, ReplicationGroup=group(A, B))
    assert code == "ValidationException"

    not_empty = make_table(ddb, [A, B])
    ddb(B).put_item(TableName=not_empty, Item={"id": {"S": "x"}})
    code, message = error_code(ddb(A).create_global_table, GlobalTableName=not_empty, ReplicationGroup=group(A, B))
    assert code == "ValidationException" and "empty" in message

    name = make_table(ddb, [A, B])
    ddb(A).create_global_table(GlobalTableName=name, ReplicationGroup=group(A, B))
    code, _ = error_code(ddb(A).create_global_table, GlobalTableName=name, ReplicationGroup=group(A, B))
    assert code == "GlobalTableAlreadyExistsException"


def test_describe_and_update_global_table_errors_as_aws(ddb: Any) -> None:
    code, _ = error_code(ddb(A).describe_global_table, GlobalTableName="no-such-global-table")
    assert code == "GlobalTableNotFoundException"
    code, _ = error_code(ddb(A).update_global_table, GlobalTableName="no-such-global-table",
                         ReplicaUpdates=[{"Create": {"RegionName": B}}])
    assert code == "GlobalTableNotFoundException"
    name = make_table(ddb, [A, B])
    ddb(A).create_global_table(GlobalTableName=name, ReplicationGroup=group(A, B))
    code, _ = error_code(ddb(A).update_global_table, GlobalTableName=name, ReplicaUpdates=[{"Create": {"RegionName": B}}])
    assert code == "ReplicaAlreadyExistsException"
    code, _ = error_code(ddb(A).update_global_table, GlobalTableName=name, ReplicaUpdates=[{"Delete": {"RegionName": C}}])
    assert code == "ReplicaNotFoundException"
    code, _ = error_code(ddb(A).update_global_table, GlobalTableName=name, ReplicaUpdates=[{"Create": {"RegionName": C}}])
    assert code == "TableNotFoundException"


def test_update_table_replica_updates_create_and_delete(ddb: Any) -> None:
    name = make_table(ddb, [A], streams=None)
    ddb(A).put_item(TableName=name, Item={"id": {"S": "seed"}})
    described = ddb(A).update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": B}}])["TableDescription"]
    assert described["GlobalTableVersion"] == "2019.11.21"
    assert described["Replicas"] == [{"RegionName": B, "ReplicaStatus": "ACTIVE"}]
    replica = ddb(B).describe_table(TableName=name)["Table"]
    assert replica["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert replica["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert replica["Replicas"] == [{"RegionName": A, "ReplicaStatus": "ACTIVE"}]
    assert ddb(B).get_item(TableName=name, Key={"id": {"S": "seed"}})["Item"] == {"id": {"S": "seed"}}
    # ListGlobalTables and DescribeGlobalTable are legacy-only APIs.
    assert name not in [t["GlobalTableName"] for t in ddb(A).list_global_tables()["GlobalTables"]]
    code, _ = error_code(ddb(A).describe_global_table, GlobalTableName=name)
    assert code == "GlobalTableNotFoundException"

    code, _ = error_code(ddb(A).update_table, TableName=name, ReplicaUpdates=[{"Create": {"RegionName": B}}])
    assert code == "ValidationException"
    code, _ = error_code(ddb(A).update_table, TableName=name, ReplicaUpdates=[{"Delete": {"RegionName": C}}])
    assert code == "ValidationException"
    code, _ = error_code(ddb(A).update_table, TableName="no-such-table", ReplicaUpdates=[{"Create": {"RegionName": B}}])
    assert code == "ResourceNotFoundException"

    after = ddb(A).update_table(TableName=name, ReplicaUpdates=[{"Delete": {"RegionName": B}}])["TableDescription"]
    assert "Replicas" not in after and "GlobalTableVersion" not in after
    code, _ = error_code(ddb(B).describe_table, TableName=name)
    assert code == "ResourceNotFoundException"


def test_replica_updates_refused_on_a_legacy_table(ddb: Any) -> None:
    name = make_table(ddb, [A, B])
    ddb(A).create_global_table(GlobalTableName=name, ReplicationGroup=group(A, B))
    code, message = error_code(ddb(A).update_table, TableName=name, ReplicaUpdates=[{"Create": {"RegionName": C}}])
    assert code == "ValidationException" and "2017.11.29" in message


def test_update_table_without_replica_updates_is_moto_as_before(ddb: Any) -> None:
    name = make_table(ddb, [A], streams=None)
    described = ddb(A).update_table(TableName=name, StreamSpecification=STREAMS)["TableDescription"]
    assert described["StreamSpecification"] == STREAMS
    assert "Replicas" not in described
