"""Legacy (2017.11.29) stamps are a second write in the source region, as on AWS.

Why it matters: the harness reads `aws:rep:updateregion` to learn where a write landed; AWS
publishes two stream records per legacy write (the item, then the stamps), so a read right after
the write may show no stamp. A local cloud that stamped in the same write would let a harness that
reads once pass here and fail on AWS.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gameday.localcloud.process.context import CloudContext, CloudSettings, RegionSpec
from tests.localcloud.test_replication import REGIONS, A, Cloud


class SlowCloud(Cloud):
    """Replication delay 5 AWS s (50 ms at scale 0.01): the stamp lands 25 ms after the write."""

    def __init__(self) -> None:
        super().__init__()
        self.stop()
        self.ctx = CloudContext(settings=CloudSettings(regions=list(REGIONS), time_scale=0.01,
                                                       replication_delay_s=5.0),
                                regions=[RegionSpec(r, f"127.0.0.{11 + i}") for i, r in enumerate(REGIONS)])
        from gameday.localcloud.dynamodb.global_tables_api import GlobalTables
        from gameday.localcloud.motoglue.server import AwsEndpoint

        self.tables = GlobalTables(self.ctx)
        self.tables.install()
        self.endpoint = AwsEndpoint("127.0.0.1", 0, self.ctx.control)
        self.endpoint.start()
        self.tables.start()
        self._clients = {}


@pytest.fixture(scope="module")
def slow() -> Iterator[Cloud]:
    running = SlowCloud()
    try:
        yield running
    finally:
        running.stop()


def test_stamps_arrive_in_a_second_write_after_the_item(slow: Cloud) -> None:
    name = slow.legacy_table()
    slow.put(A, name, "late", "v1")
    first = slow.get(A, name, "late")
    assert first is not None and "aws:rep:updateregion" not in first, first
    stamped = slow.poll(lambda: (slow.get(A, name, "late") or {}).get("aws:rep:updateregion"))
    assert stamped == {"S": A}
    stream_arn = slow.ddb(A).describe_table(TableName=name)["Table"]["LatestStreamArn"]
    import boto3

    streams = boto3.client("dynamodbstreams", region_name=A, endpoint_url=slow.endpoint.url,
                           aws_access_key_id="test", aws_secret_access_key="test")
    shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = [r for r in streams.get_records(ShardIterator=iterator)["Records"]
               if r["dynamodb"]["Keys"] == {"id": {"S": "late"}}]
    assert [("aws:rep:updateregion" in r["dynamodb"]["NewImage"]) for r in records] == [False, True]


def test_a_newer_write_is_never_overwritten_by_an_older_stamp(slow: Cloud) -> None:
    name = slow.legacy_table()
    slow.put(A, name, "twice", "v1")
    slow.put(A, name, "twice", "v2")
    assert slow.quiet()
    for region in REGIONS:
        item = slow.get(region, name, "twice")
        assert item is not None and item["value"] == {"S": "v2"} and item["aws:rep:updateregion"] == {"S": A}
