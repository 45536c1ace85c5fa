"""Replication lag beyond the configured delay, from the local cloud's ground truth.

Starts the AWS endpoint and global tables in this process (two regions, a 2017.11.29
global table), writes N items through boto3 over HTTP into the first region from writer
threads in a child process (as the harness's traffic is another process), and reads every
`replication_applied` event: lag_s minus the scaled replication delay is what the local
cloud adds. Goal: p50 and p99 under 10 ms.

    python bench/replication_lag.py [--items 2000] [--writers 4] [--time-scale 0.01]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import threading
import time
import uuid
from typing import Any

import boto3
from botocore.config import Config
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from gameday.localcloud.dynamodb.global_tables_api import GlobalTables
from gameday.localcloud.motoglue.server import AwsEndpoint
from gameday.localcloud.process.context import CloudContext, CloudSettings, RegionSpec

REGIONS = ["eu-west-1", "us-east-1"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _client(url: str, region: str, pool: int) -> Any:
    return boto3.client("dynamodb", region_name=region, endpoint_url=url,
                        aws_access_key_id="bench", aws_secret_access_key="bench",
                        config=Config(max_pool_connections=pool, retries={"max_attempts": 1}))


def _write_items(url: str, region: str, name: str, items: int, writers: int) -> None:
    """The writers (child process): items 0..items-1 from `writers` threads."""
    ddb = _client(url, region, writers + 2)

    def write(offset: int) -> None:
        for i in range(offset, items, writers):
            ddb.put_item(TableName=name, Item={"id": {"N": str(i)}, "name": {"S": f"item-{i}"}})

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def run(items: int, writers: int, time_scale: float, version: str) -> dict[str, Any]:
    settings = CloudSettings(regions=list(REGIONS), time_scale=time_scale)
    ctx = CloudContext(settings=settings, regions=[RegionSpec(r, f"127.0.0.{11 + i}") for i, r in enumerate(REGIONS)])
    tables = GlobalTables(ctx)
    tables.install()
    endpoint = AwsEndpoint("127.0.0.1", 0, ctx.control)
    endpoint.start()
    tables.start()
    try:
        def client(region: str) -> Any:
            return _client(endpoint.url, region, 2)

        name = f"bench-{uuid.uuid4().hex[:8]}"
        for region in REGIONS:
            client(region).create_table(
                TableName=name, BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
                StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
        if version == "2017.11.29":
            client(REGIONS[0]).create_global_table(GlobalTableName=name,
                                                   ReplicationGroup=[{"RegionName": r} for r in REGIONS])
        else:
            client(REGIONS[1]).delete_table(TableName=name)
            client(REGIONS[0]).update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": REGIONS[1]}}])
        since = ctx.truth.events()[-1]["seq"] if ctx.truth.events() else 0

        writer = multiprocessing.get_context("spawn").Process(
            target=_write_items, args=(endpoint.url, REGIONS[0], name, items, writers))
        started = time.monotonic()
        writer.start()
        writer.join()
        elapsed = time.monotonic() - started  # includes the child's start-up: writes/s is a floor
        if writer.exitcode != 0:
            raise RuntimeError(f"writer process failed (exit {writer.exitcode})")

        def applied() -> list[dict[str, Any]]:
            return ctx.truth.events(since=since, kind="replication_applied")

        events = Retrying(stop=stop_after_delay(30), wait=wait_fixed(0.05),
                          retry=retry_if_result(lambda found: len(found) < items),
                          retry_error_callback=lambda state: state.outcome.result())(applied)
        delay = tables.replicator.delay_s
        beyond_ms = [(e["lag_s"] - delay) * 1000 for e in events if e["table"] == name]
        return {"items": items, "writers": writers, "writes_per_s": items / elapsed, "delay_ms": delay * 1000,
                "applied": len(beyond_ms), "p50_ms": percentile(beyond_ms, 0.50), "p99_ms": percentile(beyond_ms, 0.99),
                "max_ms": max(beyond_ms), "mean_ms": statistics.fmean(beyond_ms)}
    finally:
        tables.stop()
        endpoint.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--time-scale", type=float, default=0.01)
    parser.add_argument("--table-version", default="2017.11.29", choices=["2017.11.29", "2019.11.21"])
    args = parser.parse_args(argv)
    result = run(args.items, args.writers, args.time_scale, args.table_version)
    print(f"replication lag beyond the configured delay ({result['delay_ms']:.1f} ms), "
          f"{result['applied']}/{result['items']} writes, {result['writers']} writers at "
          f"{result['writes_per_s']:.0f} writes/s: p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, "
          f"max {result['max_ms']:.2f} ms (goal: p50 and p99 under 10 ms)")
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > cores:
        print(f"note: load average {load:.1f} on {cores} cores while measuring: other processes inflate p99")
    return 0 if result["applied"] == result["items"] else 1


if __name__ == "__main__":
    sys.exit(main())
