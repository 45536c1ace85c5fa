"""Multi-Region strong consistency in the local cloud, through boto3 over HTTP: the mode is chosen
when the global table is made (three replicas, or two and a witness, of one region set, an empty
table), strongly consistent reads anywhere see every acknowledged write while eventually
consistent reads lag, and a write to an item another region is writing is rejected."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from tenacity import Retrying, stop_after_delay, wait_fixed

from tests.support.cloud_rigs import dynamodb_clients, global_tables_endpoint

REGIONS = ["eu-west-1", "eu-west-2", "eu-west-3", "us-east-1"]
A, B, C, US = REGIONS
SCALE = 0.01
COMMIT_S = 100 * SCALE          # an MRSC write is in flight this long (local s): wide enough to meet
REPLICATION_S = 300 * SCALE     # eventually consistent replicas lag this long (local s)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with global_tables_endpoint(REGIONS, time_scale=SCALE, mrsc_commit_s=COMMIT_S / SCALE,
                                replication_delay_s=REPLICATION_S / SCALE) as url:
        yield url


@pytest.fixture
def ddb(endpoint: str) -> Any:
    return dynamodb_clients(endpoint)


def new_table(ddb: Any, region: str = A) -> str:
    name = f"mrsc-{uuid.uuid4().hex[:10]}"
    ddb(region).create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                             KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                             AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}])
    return name


def make_strong(ddb: Any, name: str, replicas: list[str], witness: str | None = None, region: str = A) -> dict:
    kwargs: dict[str, Any] = {"TableName": name, "MultiRegionConsistency": "STRONG",
                              "ReplicaUpdates": [{"Create": {"RegionName": r}} for r in replicas]}
    if witness:
        kwargs["GlobalTableWitnessUpdates"] = [{"Create": {"RegionName": witness}}]
    return ddb(region).update_table(**kwargs)["TableDescription"]


def refusal(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def item(n: int, **extra: str) -> dict[str, Any]:
    return {"id": {"N": str(n)}, **{k: {"S": v} for k, v in extra.items()}}


def test_three_replicas_describe_strong_everywhere(ddb: Any) -> None:
    name = new_table(ddb)
    make_strong(ddb, name, [B, C])
    for region in (A, B, C):
        table = ddb(region).describe_table(TableName=name)["Table"]
        assert table["MultiRegionConsistency"] == "STRONG"
        assert sorted(r["RegionName"] for r in table["Replicas"]) == sorted({A, B, C} - {region})
        assert "GlobalTableWitnesses" not in table


def test_two_replicas_and_a_witness_hold_no_table_in_the_witness(ddb: Any) -> None:
    name = new_table(ddb)
    make_strong(ddb, name, [B], witness=C)
    table = ddb(B).describe_table(TableName=name)["Table"]
    assert table["MultiRegionConsistency"] == "STRONG"
    assert table["GlobalTableWitnesses"] == [{"RegionName": C, "WitnessStatus": "ACTIVE"}]
    assert [r["RegionName"] for r in table["Replicas"]] == [A]
    code, _ = refusal(ddb(C).describe_table, TableName=name)
    assert code == "ResourceNotFoundException"


def test_eventual_global_tables_say_so(ddb: Any) -> None:
    name = new_table(ddb)
    ddb(A).update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": US}}])
    assert ddb(US).describe_table(TableName=name)["Table"]["MultiRegionConsistency"] == "EVENTUAL"


@pytest.mark.parametrize(("replicas", "witness", "expected"), [
    ([B], None, "exactly 3 regions"),
    ([B, C, "eu-central-1"], None, "exactly 3 regions"),
    ([US], B, "one region set"),
    ([B, C], "eu-central-1", "a witness pairs with exactly 2 replicas"),
])
def test_layouts_mrsc_refuses(ddb: Any, replicas: list[str], witness: str | None, expected: str) -> None:
    name = new_table(ddb)
    kwargs: dict[str, Any] = {"TableName": name, "MultiRegionConsistency": "STRONG",
                              "ReplicaUpdates": [{"Create": {"RegionName": r}} for r in replicas]}
    if witness:
        kwargs["GlobalTableWitnessUpdates"] = [{"Create": {"RegionName": witness}}]
    code, message = refusal(ddb(A).update_table, **kwargs)
    assert code == "ValidationException" and expected in message, message
    assert "Replicas" not in ddb(A).describe_table(TableName=name)["Table"]   # nothing changed
    assert name not in ddb(B).list_tables()["TableNames"]


def test_mode_needs_an_empty_table_and_cannot_change_later(ddb: Any) -> None:
    name = new_table(ddb)
    ddb(A).put_item(TableName=name, Item=item(1))
    code, message = refusal(ddb(A).update_table, TableName=name, MultiRegionConsistency="STRONG",
                            ReplicaUpdates=[{"Create": {"RegionName": B}}, {"Create": {"RegionName": C}}])
    assert code == "ValidationException" and "must be empty" in message
    eventual = new_table(ddb)
    ddb(A).update_table(TableName=eventual, ReplicaUpdates=[{"Create": {"RegionName": B}}])
    code, message = refusal(ddb(A).update_table, TableName=eventual, MultiRegionConsistency="STRONG",
                            ReplicaUpdates=[{"Create": {"RegionName": C}}])
    assert code == "ValidationException" and "cannot change" in message
    code, message = refusal(ddb(A).update_table, TableName=new_table(ddb),
                            ReplicaUpdates=[{"Create": {"RegionName": B}}],
                            GlobalTableWitnessUpdates=[{"Create": {"RegionName": C}}])
    assert code == "ValidationException" and "STRONG" in message


def test_strong_reads_anywhere_see_every_acknowledged_write_eventual_reads_lag(ddb: Any) -> None:
    name = new_table(ddb)
    make_strong(ddb, name, [B, C])
    ids = list(range(1, 11))
    started = time.monotonic()
    ddb(A).batch_write_item(RequestItems={name: [{"PutRequest": {"Item": item(n, v="one")}} for n in ids]})
    acknowledged = time.monotonic()
    assert acknowledged - started >= COMMIT_S      # acknowledged only after the cross-region commit
    # Right after the acknowledgement, B's replica has not received the writes: eventual reads miss them.
    assert "Item" not in ddb(B).get_item(TableName=name, Key={"id": {"N": "1"}})
    # Strong reads in B and C see them: one item, a query, a batch.
    assert ddb(B).get_item(TableName=name, Key={"id": {"N": "1"}}, ConsistentRead=True)["Item"]["v"] == {"S": "one"}
    found = ddb(C).query(TableName=name, KeyConditionExpression="id = :n",
                         ExpressionAttributeValues={":n": {"N": "2"}}, ConsistentRead=True)["Items"]
    assert [i["id"]["N"] for i in found] == ["2"]
    batch = ddb(B).batch_get_item(RequestItems={name: {"Keys": [{"id": {"N": str(n)}} for n in ids],
                                                       "ConsistentRead": True}})["Responses"][name]
    assert sorted(int(i["id"]["N"]) for i in batch) == ids
    assert time.monotonic() - acknowledged < REPLICATION_S   # all of it before replication would have delivered
    # A newer write from C wins everywhere, strongly read at once.
    ddb(C).put_item(TableName=name, Item=item(1, v="two"))
    for region in (A, B, C):
        assert ddb(region).get_item(TableName=name, Key={"id": {"N": "1"}},
                                    ConsistentRead=True)["Item"]["v"] == {"S": "two"}


def test_a_write_to_an_item_another_region_is_writing_is_rejected(ddb: Any) -> None:
    name = new_table(ddb)
    make_strong(ddb, name, [B, C])
    results: dict[str, Any] = {}

    def write_in_a() -> None:
        results["a"] = ddb(A).put_item(TableName=name, Item=item(7, v="a"))

    writer = threading.Thread(target=write_in_a)
    writer.start()
    # A's write is applied in A and still in flight (its commit takes COMMIT_S): B's write meets it.
    for attempt in Retrying(stop=stop_after_delay(COMMIT_S), wait=wait_fixed(0.005), reraise=True):
        with attempt:
            assert "Item" in ddb(A).get_item(TableName=name, Key={"id": {"N": "7"}})
    code, message = refusal(ddb(B).put_item, TableName=name, Item=item(7, v="b"))
    assert code == "ReplicatedWriteConflictException", (code, message)
    # A write to another item is not a conflict, nor is one from the same region.
    ddb(B).put_item(TableName=name, Item=item(8, v="b"))
    writer.join()
    assert results["a"]["ResponseMetadata"]["HTTPStatusCode"] == 200
    # Once A's write is committed, B may write the item, and that write wins.
    ddb(B).put_item(TableName=name, Item=item(7, v="b"))
    assert ddb(C).get_item(TableName=name, Key={"id": {"N": "7"}}, ConsistentRead=True)["Item"]["v"] == {"S": "b"}


def test_the_same_region_may_write_an_item_it_is_writing(ddb: Any) -> None:
    name = new_table(ddb)
    make_strong(ddb, name, [B, C])
    errors: list[BaseException] = []

    def write(value: str) -> None:
        try:
            ddb(A).put_item(TableName=name, Item=item(9, v=value))
        except BaseException as exc:  # collected: the assertion below names it
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(v,)) for v in ("x", "y")]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    assert errors == []


def test_transactions_are_refused_on_mrsc_tables(ddb: Any) -> None:
    name = new_table(ddb)
    make_strong(ddb, name, [B, C])
    code, message = refusal(ddb(A).transact_write_items,
                            TransactItems=[{"Put": {"TableName": name, "Item": item(1)}}])
    assert code == "ValidationException" and "strong consistency" in message
