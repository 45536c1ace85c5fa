"""PutItem requests/s through one regional data-plane endpoint.

Starts the AWS endpoint (moto), the Lambda runtime and the data plane in this process,
deploys a PutItem handler behind POST /item in two regions, then drives POST /item at one
region's endpoint from a separate client process (so the client's CPU does not share the
cloud's GIL) with several threads for a fixed time, and prints throughput and latency.

    python -m bench.dataplane_put [--seconds 10] [--threads 8] [--route put|health]
                                  [--in-process-aws] [--profile [--profile-sort ttot] [--profile-filter harness/]]

--route health measures the data plane and runtime alone (a handler without AWS calls).
--in-process-aws is the LambdaRuntime option that serves handlers' boto3 calls without TCP.
--profile runs yappi (CPU clock) in the cloud process and prints the top functions.
The figure to compare across machines is "ms CPU per request" of the cloud process: the
cloud is one process (one GIL), so requests/s on a free core is about 1000 / that.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import random
import sys
import threading
import time
import zipfile

import boto3

from gameday import infra
from gameday.localcloud.apigateway.dataplane import DataPlane
from gameday.localcloud.awslambda.runtime import LambdaRuntime
from gameday.localcloud.motoglue.server import AwsEndpoint
from gameday.localcloud.process.context import CloudContext, CloudSettings, RegionSpec

REGIONS = ("eu-west-1", "us-east-1")
TABLE = "BenchTable"
CREDENTIALS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}

HEALTH = '''
import os
def handler(event, context):
    return {"statusCode": 200, "headers": {"x-gameday-region": os.environ["AWS_REGION"]}, "body": "ok"}
'''

FALLBACK_PUT = '''
import json, os, boto3
_table = boto3.resource("dynamodb").Table(os.environ["tableName"])
def handler(event, context):
    body = json.loads(event["body"])
    _table.put_item(Item={"id": body["id"], "name": body["name"], "written_region": os.environ["AWS_REGION"]})
    return {"statusCode": 200, "headers": {"x-gameday-region": os.environ["AWS_REGION"]},
            "body": json.dumps({"id": body["id"]})}
'''


def _code() -> tuple[bytes, str]:
    """The reference PutItem handler if present, else a minimal one of the same shape."""
    reference = infra.functions_dir() / "put_item.py"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        if reference.is_file():
            archive.writestr("put_item.py", reference.read_text())
        else:
            archive.writestr("put_item.py", FALLBACK_PUT)
        archive.writestr("bench_health.py", HEALTH)
    return buf.getvalue(), ("reference infra/functions/put_item.py" if reference.is_file() else "fallback handler")


def deploy(endpoint_url: str) -> str:
    kw = dict(endpoint_url=endpoint_url, **CREDENTIALS)
    code, which = _code()
    role = boto3.client("iam", region_name="us-east-1", **kw).create_role(
        RoleName="bench-lambda", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))["Role"]["Arn"]
    for region in REGIONS:
        boto3.client("dynamodb", region_name=region, **kw).create_table(
            TableName=TABLE, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}], BillingMode="PAY_PER_REQUEST")
        lam = boto3.client("lambda", region_name=region, **kw)
        arn = lam.create_function(
            FunctionName="gameday-PutItem", Runtime="python3.11", Role=role, Handler="put_item.handler",
            Code={"ZipFile": code}, Environment={"Variables": {"tableName": TABLE}})["FunctionArn"]
        health_arn = lam.create_function(
            FunctionName="gameday-Health", Runtime="python3.11", Role=role, Handler="bench_health.handler",
            Code={"ZipFile": code})["FunctionArn"]
        apig = boto3.client("apigateway", region_name=region, **kw)
        api = apig.create_rest_api(name="bench")["id"]
        root = next(r["id"] for r in apig.get_resources(restApiId=api)["items"] if r["path"] == "/")
        item = apig.create_resource(restApiId=api, parentId=root, pathPart="item")["id"]
        apig.put_method(restApiId=api, resourceId=item, httpMethod="POST", authorizationType="NONE")
        apig.put_integration(restApiId=api, resourceId=item, httpMethod="POST", type="AWS_PROXY",
                             integrationHttpMethod="POST",
                             uri=f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{arn}/invocations")
        health = apig.create_resource(restApiId=api, parentId=root, pathPart="health")["id"]
        apig.put_method(restApiId=api, resourceId=health, httpMethod="GET", authorizationType="NONE")
        apig.put_integration(restApiId=api, resourceId=health, httpMethod="GET", type="AWS_PROXY",
                             integrationHttpMethod="POST",
                             uri=f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{health_arn}/invocations")
        apig.create_deployment(restApiId=api, stageName="prod")
    return which


def _client(url: str, route: str, threads: int, seconds: float, results: multiprocessing.Queue[dict]) -> None:
    """Runs in a child process: `threads` keep-alive sessions posting items for `seconds`."""
    import requests

    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    start = threading.Barrier(threads + 1)
    deadline = [0.0]

    def worker(index: int) -> None:
        session = requests.Session()
        mine: list[float] = []
        bad = 0
        n = 0
        start.wait()
        while time.monotonic() < deadline[0]:
            t0 = time.monotonic()
            if route == "put":
                response = session.post(f"{url}/item", json={"id": index * 10_000_000 + n, "name": "bench"})
            else:
                response = session.get(f"{url}/health")
            mine.append(time.monotonic() - t0)
            bad += response.status_code != 200
            n += 1
        with lock:
            latencies.extend(mine)
            failures[0] += bad

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    deadline[0] = time.monotonic() + seconds
    began = time.monotonic()
    start.wait()
    for thread in pool:
        thread.join()
    elapsed = time.monotonic() - began
    latencies.sort()
    results.put({"requests": len(latencies), "failures": failures[0], "elapsed_s": elapsed,
                 "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else None,
                 "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else None})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--route", choices=("put", "health"), default="put",
                        help="health: GET /health, a handler without AWS calls (the data plane's own ceiling)")
    parser.add_argument("--in-process-aws", action="store_true",
                        help="handlers' boto3 calls reach the endpoint's WSGI app without TCP (LambdaRuntime option)")
    parser.add_argument("--profile", action="store_true", help="yappi in the cloud process")
    parser.add_argument("--profile-sort", default="tsub", choices=("tsub", "ttot", "ncall"))
    parser.add_argument("--profile-filter", default="", help="only functions whose module or name contains this")
    parser.add_argument("--profile-top", type=int, default=40)
    args = parser.parse_args()

    a, b = random.randint(1, 254), random.randint(1, 254)  # parallel runs never share addresses
    ctx = CloudContext(settings=CloudSettings(regions=list(REGIONS)),
                       regions=[RegionSpec(REGIONS[0], f"127.{a}.{b}.11"), RegionSpec(REGIONS[1], f"127.{a}.{b}.12")])
    runtime = LambdaRuntime(ctx, in_process_aws=args.in_process_aws)
    runtime.install()
    endpoint = AwsEndpoint("127.0.0.1", 0, ctx.control)
    endpoint.start()
    ctx.aws_endpoint_url = endpoint.url
    dataplane = DataPlane(ctx, runtime)
    dataplane.start()
    try:
        which = deploy(endpoint.url)
        url = f"{dataplane.url(REGIONS[0])}/prod"
        import requests

        for warm in (requests.post(f"{url}/item", json={"id": 0, "name": "warm"}, timeout=30),
                     requests.get(f"{url}/health", timeout=30)):  # cold starts are not the figure
            assert warm.status_code == 200, warm.text
        if args.profile:
            import yappi

            yappi.set_clock_type("cpu")
            yappi.start()
        results: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()
        client = multiprocessing.get_context("spawn").Process(target=_client,
                                                              args=(url, args.route, args.threads, args.seconds, results))
        cpu0 = time.process_time()
        client.start()
        figures = results.get(timeout=args.seconds + 60)
        client.join(timeout=30)
        cloud_cpu = time.process_time() - cpu0
        if args.profile:
            yappi.stop()
            stats = yappi.get_func_stats()
            stats.sort(args.profile_sort, "desc")
            rows = [r for r in stats if args.profile_filter in r.module + r.name][:args.profile_top]
            print(f"{'tsub':>8} {'ttot':>8} {'ncall':>9}  function (CPU seconds)")
            for row in rows:
                where = row.module.split("site-packages/")[-1]
                print(f"{row.tsub:8.3f} {row.ttot:8.3f} {row.ncall:9d}  {where}:{row.lineno} {row.name}")
        rate = figures["requests"] / figures["elapsed_s"]
        print(f"handler: {which}; cores: {os.cpu_count()}; client threads: {args.threads} (separate process); "
              f"handlers' AWS calls: {'in-process' if args.in_process_aws else 'HTTP'}")
        what = "PutItem" if args.route == "put" else "GET /health"
        print(f"{what} through {url}: {rate:.0f} requests/s over {figures['elapsed_s']:.1f} s, "
              f"{figures['failures']} failed, p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, "
              f"cloud process CPU {cloud_cpu / figures['elapsed_s']:.2f} cores, "
              f"{1000 * cloud_cpu / max(1, figures['requests']):.2f} ms CPU per request")
        return 0 if figures["failures"] == 0 else 1
    finally:
        dataplane.stop()
        runtime.stop()
        endpoint.stop()


if __name__ == "__main__":
    sys.exit(main())
