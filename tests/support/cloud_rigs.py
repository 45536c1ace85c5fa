"""In-process pieces of the local cloud, wired as the cloud's own process wires them, for tests of
one service's behaviour over HTTP (boto3 against the AWS endpoint)."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

from gameday.localcloud.apigateway.dataplane import DataPlane
from gameday.localcloud.awslambda.runtime import LambdaRuntime
from gameday.localcloud.dynamodb.global_tables_api import GlobalTables
from gameday.localcloud.motoglue.server import AwsEndpoint
from gameday.localcloud.process.context import CloudContext, CloudSettings, RegionSpec


@contextlib.contextmanager
def global_tables_endpoint(regions: list[str], **settings: Any) -> Iterator[str]:
    """The AWS endpoint with global tables (replication, MRSC) for `regions`; yields its URL."""
    ctx = CloudContext(settings=CloudSettings(regions=list(regions), **{"time_scale": 0.01, **settings}),
                       regions=[RegionSpec(r, f"127.0.0.{11 + i}") for i, r in enumerate(regions)])
    tables = GlobalTables(ctx)
    tables.install()
    server = AwsEndpoint("127.0.0.1", 0, ctx.control)
    server.start()
    tables.start()
    try:
        yield server.url
    finally:
        tables.stop()
        server.stop()


@contextlib.contextmanager
def provisioning_rig(regions: list[str]) -> Iterator[CloudContext]:
    """The AWS endpoint with global tables, the Lambda runtime and the data plane, as the local
    cloud runs them (regions on random 127.x.y.1N addresses, one free port)."""
    prefix = f"127.{random.randint(1, 254)}.{random.randint(0, 254)}."
    settings = CloudSettings(regions=list(regions), time_scale=0.01, data_plane_port=0)
    ctx = CloudContext(settings=settings, regions=[RegionSpec(r, f"{prefix}{11 + i}") for i, r in enumerate(regions)])
    for spec in ctx.regions:
        ctx.names.add_suffix(f".execute-api.{spec.name}.amazonaws.com", spec.address)
    tables, runtime = GlobalTables(ctx), LambdaRuntime(ctx)
    tables.install()
    runtime.install()
    endpoint = AwsEndpoint("127.0.0.1", 0, ctx.control)
    endpoint.start()
    ctx.aws_endpoint_url = endpoint.url
    dataplane = DataPlane(ctx, runtime)
    try:
        tables.start()
        dataplane.start()
        yield ctx
    finally:
        dataplane.stop()
        runtime.stop()
        tables.stop()
        endpoint.stop()


def dynamodb_clients(endpoint_url: str) -> Any:
    """region -> a DynamoDB client of that region on `endpoint_url`, without retries (an error is seen
    as the first answer gave it)."""
    import boto3
    from botocore.config import Config

    def client(region: str) -> Any:
        return boto3.client("dynamodb", region_name=region, endpoint_url=endpoint_url,
                            aws_access_key_id="test", aws_secret_access_key="test",
                            config=Config(retries={"max_attempts": 1}))
    return client
