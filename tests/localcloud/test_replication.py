"""Global-table replication in the local cloud, through boto3 over HTTP.

One AWS endpoint with global tables for the module (three regions, time scale 0.01).
Every test uses its own tables; tests that inject a replication fault undo it in a
`finally`. Waits are tenacity polls whose budget comes from the scaled replication delay
plus a margin for a loaded 2-core machine.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from gameday.localcloud.dynamodb.global_tables_api import GlobalTables, register_global_table
from gameday.localcloud.dynamodb.replication import STREAM_MAX_RECORDS
from gameday.localcloud.motoglue import access as moto_access
from gameday.localcloud.motoglue import patches
from gameday.localcloud.motoglue.server import AwsEndpoint
from gameday.localcloud.process.context import CloudContext, CloudSettings, RegionSpec

REGIONS = ["eu-west-1", "us-east-1", "ap-southeast-2"]
A, B, C = REGIONS
STAMPS = ("aws:rep:updateregion", "aws:rep:updatetime", "aws:rep:deleting")
LOAD_MARGIN_S = 3.0  # a busy 2-core CI machine, not the cloud, sets this


class Cloud:
    def __init__(self) -> None:
        self.ctx = CloudContext(settings=CloudSettings(regions=list(REGIONS), time_scale=0.01),
                                regions=[RegionSpec(r, f"127.0.0.{11 + i}") for i, r in enumerate(REGIONS)])
        self.tables = GlobalTables(self.ctx)
        self.tables.install()
        self.endpoint = AwsEndpoint("127.0.0.1", 0, self.ctx.control)
        self.endpoint.start()
        self.tables.start()
        self._clients: dict[str, Any] = {}

    def stop(self) -> None:
        self.tables.stop()
        self.endpoint.stop()

    @property
    def delay_s(self) -> float:
        return self.tables.replicator.delay_s

    @property
    def budget_s(self) -> float:
        """How long a replicated write may take to show up: the delay, with margin."""
        return 20 * self.delay_s + LOAD_MARGIN_S

    def ddb(self, region: str) -> Any:
        if region not in self._clients:
            self._clients[region] = boto3.client(
                "dynamodb", region_name=region, endpoint_url=self.endpoint.url,
                aws_access_key_id="test", aws_secret_access_key="test",
                config=Config(retries={"max_attempts": 1}, max_pool_connections=20))
        return self._clients[region]

    def control(self, action: str, region: str) -> dict[str, Any]:
        response = requests.post(f"{self.endpoint.url}/_gameday/replication/{action}", json={"region": region}, timeout=5)
        assert response.status_code == 200, response.text
        return response.json()

    def status(self) -> dict[str, Any]:
        return requests.get(f"{self.endpoint.url}/_gameday/replication/status", timeout=5).json()

    def create_tables(self, regions: list[str], streams: bool = True, range_key: bool = False) -> str:
        name = f"gt-{uuid.uuid4().hex[:10]}"
        schema = [{"AttributeName": "id", "KeyType": "HASH"}]
        attrs = [{"AttributeName": "id", "AttributeType": "S"}]
        if range_key:
            schema.append({"AttributeName": "sk", "KeyType": "RANGE"})
            attrs.append({"AttributeName": "sk", "AttributeType": "N"})
        for region in regions:
            kwargs: dict[str, Any] = {"TableName": name, "KeySchema": schema, "AttributeDefinitions": attrs,
                                      "BillingMode": "PAY_PER_REQUEST"}
            if streams:
                kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
            self.ddb(region).create_table(**kwargs)
        return name

    def legacy_table(self, regions: list[str] = REGIONS) -> str:
        name = self.create_tables(regions)
        self.ddb(regions[0]).create_global_table(GlobalTableName=name,
                                                 ReplicationGroup=[{"RegionName": r} for r in regions])
        return name

    def current_table(self, regions: list[str] = REGIONS) -> str:
        name = self.create_tables(regions[:1], streams=False)
        for region in regions[1:]:
            self.ddb(regions[0]).update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": region}}])
        return name

    def get(self, region: str, name: str, item_id: str) -> dict[str, Any] | None:
        return self.ddb(region).get_item(TableName=name, Key={"id": {"S": item_id}}, ConsistentRead=True).get("Item")

    def put(self, region: str, name: str, item_id: str, value: str) -> None:
        self.ddb(region).put_item(TableName=name, Item={"id": {"S": item_id}, "value": {"S": value}})

    def poll(self, probe: Callable[[], Any], budget: float | None = None) -> Any:
        """probe() until it returns something truthy or the budget is spent; returns the last result."""
        return Retrying(stop=stop_after_delay(budget if budget is not None else self.budget_s),
                        wait=wait_fixed(max(self.delay_s, 0.005)), retry=retry_if_result(lambda found: not found),
                        retry_error_callback=lambda state: state.outcome.result())(probe)

    def quiet(self) -> bool:
        """Every delivery made (nothing pending or held)."""
        def settled() -> dict[str, Any] | None:
            status = self.status()
            return status if status["pending"] == 0 and status["held"] == 0 else None

        return self.poll(settled) is not None


@pytest.fixture(scope="module")
def cloud() -> Iterator[Cloud]:
    running = Cloud()
    try:
        yield running
    finally:
        running.stop()


def _value(item: dict[str, Any] | None) -> str | None:
    return item["value"]["S"] if item else None


def test_patch_points_have_no_problems(cloud: Cloud) -> None:
    targets = {p.target for p in patches.all_points()}
    assert "moto.dynamodb.models.table:StreamShard.add" in targets
    assert "moto.dynamodb.responses:DynamoHandler.create_global_table" in targets
    assert patches.problems() == []


def test_legacy_write_appears_in_every_region_with_stamps(cloud: Cloud) -> None:
    name = cloud.legacy_table()
    before = time.time()
    cloud.put(A, name, "one", "v1")
    seen = {r: cloud.poll(lambda r=r: cloud.get(r, name, "one")) for r in (B, C)}
    source = cloud.get(A, name, "one")
    for region, item in {A: source, **seen}.items():
        assert item is not None, f"item missing in {region}"
        assert item["value"] == {"S": "v1"}
        assert item["aws:rep:updateregion"] == {"S": A}, region
        assert item["aws:rep:deleting"] == {"BOOL": False}, region
        assert before - 1 <= float(item["aws:rep:updatetime"]["N"]) <= time.time() + 1, region
        assert item == source, f"{region} differs from the written item"  # same stamps everywhere
    events = [e for e in cloud.ctx.truth.events(kind="replication_applied") if e["table"] == name]
    assert {(e["source"], e["target"], e["op"]) for e in events} == {(A, B, "put"), (A, C, "put")}
    assert all(e["key"] == {"id": {"S": "one"}} and e["lag_s"] >= cloud.delay_s for e in events)


def test_current_write_appears_in_every_region_without_stamps(cloud: Cloud) -> None:
    name = cloud.create_tables([A], streams=False)
    cloud.put(A, name, "before", "v0")  # an item that exists before the replicas: copied on creation
    for region in (B, C):
        cloud.ddb(A).update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": region}}])
    description = cloud.ddb(B).describe_table(TableName=name)["Table"]
    assert description["GlobalTableVersion"] == "2019.11.21"
    assert sorted(r["RegionName"] for r in description["Replicas"]) == sorted([A, C])
    assert {r["ReplicaStatus"] for r in description["Replicas"]} == {"ACTIVE"}
    assert description["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert cloud.get(C, name, "before") == {"id": {"S": "before"}, "value": {"S": "v0"}}

    cloud.put(C, name, "two", "v2")
    for region in (A, B):
        item = cloud.poll(lambda r=region: cloud.get(r, name, "two"))
        assert item == {"id": {"S": "two"}, "value": {"S": "v2"}}, region
    assert not any(s in cloud.get(C, name, "two") for s in STAMPS)


def test_deletes_replicate(cloud: Cloud) -> None:
    for name in (cloud.legacy_table(), cloud.current_table()):
        cloud.put(B, name, "gone", "v1")
        assert cloud.poll(lambda name=name: cloud.get(A, name, "gone") and cloud.get(C, name, "gone"))
        cloud.ddb(C).delete_item(TableName=name, Key={"id": {"S": "gone"}})
        assert cloud.poll(lambda name=name: all(cloud.get(r, name, "gone") is None for r in REGIONS)), name
        ops = {e["op"] for e in cloud.ctx.truth.events(kind="replication_applied") if e["table"] == name}
        assert ops == {"put", "delete"}


def test_conflicting_writes_converge_to_the_last_writer(cloud: Cloud) -> None:
    name = cloud.legacy_table()
    # Hold replication in both writing regions so the two writes really conflict.
    cloud.control("pause", A)
    cloud.control("pause", B)
    try:
        cloud.put(A, name, "k", "from-a")
        cloud.put(B, name, "k", "from-b")  # the last writer
    finally:
        cloud.control("resume", A)
        cloud.control("resume", B)
    assert cloud.quiet()
    final = {r: cloud.get(r, name, "k") for r in REGIONS}
    assert {r: _value(i) for r, i in final.items()} == {r: "from-b" for r in REGIONS}
    assert {i["aws:rep:updateregion"]["S"] for i in final.values()} == {B}


def test_concurrent_writers_converge_everywhere(cloud: Cloud) -> None:
    for name in (cloud.legacy_table(), cloud.current_table()):
        keys = [f"k{i}" for i in range(10)]

        def writer(region: str, name: str, keys: list[str]) -> None:
            for round_ in range(5):
                for key in keys:
                    cloud.put(region, name, key, f"{region}-{round_}")

        threads = [threading.Thread(target=writer, args=(r, name, keys)) for r in REGIONS]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert cloud.quiet()
        views = {r: {i["id"]["S"]: i for i in cloud.ddb(r).scan(TableName=name, ConsistentRead=True)["Items"]}
                 for r in REGIONS}
        assert views[A] == views[B] == views[C], name
        assert sorted(views[A]) == sorted(keys)
        if "aws:rep:updatetime" in views[A]["k0"]:  # 2017: the survivor is the latest stamped write
            for item in views[A].values():
                assert item["value"]["S"].startswith(item["aws:rep:updateregion"]["S"])


def test_pause_holds_writes_back_and_resume_delivers_all_in_order(cloud: Cloud) -> None:
    name = cloud.legacy_table()
    held_before = cloud.status()["held"]
    cloud.control("pause", B)
    try:
        for i in range(5):
            cloud.put(A, name, f"p{i}", "v")
        for version in range(5):
            cloud.put(A, name, "ordered", f"v{version}")
        cloud.put(B, name, "from-b", "v")  # writes from a paused region are held too
        # 10 writes from A are held for B; B's write is held for A and C: 12 deliveries.
        assert cloud.poll(lambda: cloud.status()["held"] - held_before >= 12)
        assert cloud.poll(lambda: cloud.get(C, name, "p4"))  # A -> C still flows
        assert all(cloud.get(B, name, f"p{i}") is None for i in range(5))
        assert cloud.get(B, name, "ordered") is None
        assert cloud.get(A, name, "from-b") is None and cloud.get(C, name, "from-b") is None
    finally:
        resumed = cloud.control("resume", B)
    assert resumed["released"] >= 12
    assert cloud.poll(lambda: all(cloud.get(B, name, f"p{i}") for i in range(5)))
    assert cloud.poll(lambda: cloud.get(A, name, "from-b") and cloud.get(C, name, "from-b"))
    assert _value(cloud.get(B, name, "ordered")) == "v4"
    applied = [e for e in cloud.ctx.truth.events(kind="replication_applied")
               if e["table"] == name and e["target"] == B and e["key"] == {"id": {"S": "ordered"}}]
    assert len(applied) == 5, "every held write is delivered, oldest first, none superseded"
    kinds = [e["kind"] for e in cloud.ctx.truth.events() if e["kind"].startswith("replication_") and e.get("region") == B]
    assert kinds[-2:] == ["replication_paused", "replication_resumed"]


def test_drop_loses_writes_until_undropped(cloud: Cloud) -> None:
    name = cloud.legacy_table([A, B])
    discarded = cloud.status()["discarded"]
    cloud.control("drop", B)
    try:
        cloud.put(A, name, "lost", "v")
        assert cloud.poll(lambda: cloud.status()["discarded"] > discarded)
        assert cloud.get(B, name, "lost") is None
    finally:
        cloud.control("undrop", B)
    cloud.put(A, name, "kept", "v")
    assert cloud.poll(lambda: cloud.get(B, name, "kept"))
    assert cloud.get(B, name, "lost") is None, "a dropped write stays lost"
    kinds = [e["kind"] for e in cloud.ctx.truth.events() if e.get("region") == B]
    assert kinds[-2:] == ["replication_dropped", "replication_undropped"]


def test_control_routes_refuse_bad_input(cloud: Cloud) -> None:
    url = f"{cloud.endpoint.url}/_gameday/replication"
    unknown = requests.post(f"{url}/pause", json={"region": "mars-north-1"}, timeout=5)
    assert unknown.status_code == 400 and "mars-north-1" in unknown.json()["error"]
    missing = requests.post(f"{url}/drop", json={}, timeout=5)
    assert missing.status_code == 400 and "region" in missing.json()["error"]
    status = requests.get(f"{url}/status", timeout=5)
    assert status.status_code == 200
    assert {"delay_s", "paused", "dropped", "pending", "held", "applied", "global_tables"} <= set(status.json())
    assert status.json()["paused"] == [] and status.json()["dropped"] == []


def test_stream_is_trimmed_and_still_readable(cloud: Cloud) -> None:
    name = cloud.create_tables([A])
    streams = boto3.client("dynamodbstreams", region_name=A, endpoint_url=cloud.endpoint.url,
                           aws_access_key_id="test", aws_secret_access_key="test")
    arn = cloud.ddb(A).describe_table(TableName=name)["Table"]["LatestStreamArn"]
    shard_id = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    early = streams.get_shard_iterator(StreamArn=arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    for batch in range(200):  # 5000 writes, 25 per BatchWriteItem
        cloud.ddb(A).batch_write_item(RequestItems={name: [
            {"PutRequest": {"Item": {"id": {"S": f"{batch}-{i}"}}}} for i in range(25)]})
    shard = moto_access.dynamodb(A).tables[name].stream_shard
    assert len(shard.items) <= STREAM_MAX_RECORDS

    records = streams.get_records(ShardIterator=early, Limit=10)["Records"]  # an iterator from before the trim
    assert records and records[0]["awsRegion"] == A
    latest = streams.get_shard_iterator(StreamArn=arn, ShardId=shard_id, ShardIteratorType="LATEST")["ShardIterator"]
    cloud.ddb(A).put_item(TableName=name, Item={"id": {"S": "newest"}})
    newest = streams.get_records(ShardIterator=latest)["Records"]
    assert [r["dynamodb"]["Keys"] for r in newest] == [{"id": {"S": "newest"}}]
    sequence = newest[0]["dynamodb"]["SequenceNumber"]
    again = streams.get_shard_iterator(StreamArn=arn, ShardId=shard_id, ShardIteratorType="AT_SEQUENCE_NUMBER",
                                       SequenceNumber=sequence)["ShardIterator"]
    assert streams.get_records(ShardIterator=again)["Records"][0]["dynamodb"]["SequenceNumber"] == sequence
    assert int(sequence) >= 5000, "sequence numbers keep counting across trims"


def test_register_global_table_creates_and_replicates(cloud: Cloud) -> None:
    name = f"cfn-{uuid.uuid4().hex[:10]}"
    described = register_global_table(
        name, [A, B], "2019.11.21",
        key_schema=[{"AttributeName": "id", "KeyType": "HASH"}],
        attribute_definitions=[{"AttributeName": "id", "AttributeType": "S"}])
    assert described == {"name": name, "version": "2019.11.21", "regions": [A, B], "consistency": "EVENTUAL",
                         "witness": None}
    for region in (A, B):
        table = cloud.ddb(region).describe_table(TableName=name)["Table"]
        assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        assert table["GlobalTableVersion"] == "2019.11.21"
    cloud.put(B, name, "cfn", "v")
    assert _value(cloud.poll(lambda: cloud.get(A, name, "cfn"))) == "v"
    # Idempotent, and a new region joins with the items.
    register_global_table(name, [A, B, C], "2019.11.21")
    assert _value(cloud.get(C, name, "cfn")) == "v"


def test_range_key_tables_and_update_item_replicate(cloud: Cloud) -> None:
    name = cloud.create_tables(REGIONS[:2], range_key=True)
    cloud.ddb(A).create_global_table(GlobalTableName=name, ReplicationGroup=[{"RegionName": r} for r in REGIONS[:2]])
    key = {"id": {"S": "h"}, "sk": {"N": "1"}}
    cloud.ddb(A).update_item(TableName=name, Key=key, UpdateExpression="SET tags = :t, n = :n",
                             ExpressionAttributeValues={":t": {"SS": ["x"]}, ":n": {"N": "1"}})
    cloud.ddb(A).update_item(TableName=name, Key=key, UpdateExpression="ADD tags :t, n :one",
                             ExpressionAttributeValues={":t": {"SS": ["y"]}, ":one": {"N": "1"}})

    def replica() -> dict[str, Any] | None:
        item = cloud.ddb(B).get_item(TableName=name, Key=key, ConsistentRead=True).get("Item")
        return item if item and item["n"] == {"N": "2"} else None

    item = cloud.poll(replica)
    assert item is not None and sorted(item["tags"]["SS"]) == ["x", "y"]
    assert item == cloud.ddb(A).get_item(TableName=name, Key=key, ConsistentRead=True)["Item"]
    cloud.ddb(B).delete_item(TableName=name, Key=key)
    assert cloud.poll(lambda: "Item" not in cloud.ddb(A).get_item(TableName=name, Key=key, ConsistentRead=True))
