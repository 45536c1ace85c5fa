"""The in-process Lambda runtime: functions created through boto3 over HTTP against the local
AWS endpoint (moto), run by LambdaRuntime.invoke with their current configuration."""

from __future__ import annotations

import io
import json
import os
import random
import threading
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from tenacity import retry, retry_if_result, stop_after_delay, wait_fixed

from gameday.localcloud.awslambda.runtime import (
    FunctionNotFound,
    InvocationError,
    InvocationTimeout,
    LambdaRuntime,
    Throttled,
)
from gameday.localcloud.motoglue.server import AwsEndpoint
from gameday.localcloud.process.context import CloudContext, CloudSettings, RegionSpec
from tests.support.lambda_updates import update_configuration, wait_applied

REGIONS = ("eu-west-1", "us-east-1")
CREDENTIALS = {"aws_access_key_id": "gameday-test", "aws_secret_access_key": "gameday-test"}

ENV_PROBE = '''
import os, threading, time
LOADS = 0
LOADS += 1          # module level: once per execution environment
INVOCATIONS = 0
def handler(event, context):
    global INVOCATIONS
    INVOCATIONS += 1
    first = {k: os.environ.get(k) for k in event.get("keys", [])}
    time.sleep(event.get("pause_s", 0))
    second = {k: os.getenv(k) for k in event.get("keys", [])}
    return {"first": first, "second": second, "loads": LOADS, "invocations": INVOCATIONS,
            "module": __name__, "environ_len": len(os.environ), "function": context.function_name,
            "version": context.function_version}
'''
SLOW = '''
import time
def handler(event, context):
    time.sleep(event["sleep_s"])
    return {"slept": event["sleep_s"]}
'''
FAILING = '''
def handler(event, context):
    raise ValueError("bad input " + str(event.get("n")))
def not_serialisable(event, context):
    return {"when": object()}
'''
PUT = '''
import os, boto3
_table = boto3.resource("dynamodb").Table(os.environ["tableName"])   # module-level client, per function
def handler(event, context):
    _table.put_item(Item={"id": event["id"], "written_region": os.environ["AWS_REGION"]})
    return {"ok": True}
'''
BROKEN_IMPORT = '''
import no_such_module_anywhere
def handler(event, context):
    return 1
'''


def zipped(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, source in files.items():
            archive.writestr(name, source)
    return buf.getvalue()


class Cloud:
    """The AWS endpoint and a LambdaRuntime over two regions; boto3 clients against the endpoint."""

    def __init__(self) -> None:
        a, b = random.randint(1, 254), random.randint(1, 254)
        self.ctx = CloudContext(settings=CloudSettings(regions=list(REGIONS)),
                                regions=[RegionSpec(REGIONS[0], f"127.{a}.{b}.11"),
                                         RegionSpec(REGIONS[1], f"127.{a}.{b}.12")])
        self.runtime = LambdaRuntime(self.ctx)
        self.runtime.install()
        self.endpoint = AwsEndpoint("127.0.0.1", 0, self.ctx.control)
        self.endpoint.start()
        self.ctx.aws_endpoint_url = self.endpoint.url
        self.role = self.client("iam", "us-east-1").create_role(
            RoleName=f"lambda-{a}-{b}", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
        )["Role"]["Arn"]
        # The handlers' calls run as this role (IAM is enforced): what they need, as on AWS.
        self.client("iam", "us-east-1").put_role_policy(
            RoleName=f"lambda-{a}-{b}", PolicyName="handlers", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["dynamodb:*", "lambda:GetFunction"], "Resource": "*"}]}))
        self._names = iter(range(1, 10**6))

    def client(self, service: str, region: str) -> Any:
        return boto3.client(service, region_name=region, endpoint_url=self.endpoint.url, **CREDENTIALS)

    def function(self, region: str, source: str | dict[str, str], env: dict[str, str] | None = None,
                 handler: str = "app.handler", name: str | None = None) -> str:
        name = name or f"fn-{next(self._names)}"
        files = {"app.py": source} if isinstance(source, str) else source
        self.client("lambda", region).create_function(
            FunctionName=name, Runtime="python3.11", Role=self.role, Handler=handler, Code={"ZipFile": zipped(files)},
            Environment={"Variables": env or {}}, Timeout=3)
        return name

    def stop(self) -> None:
        self.runtime.stop()
        self.endpoint.stop()


@pytest.fixture(scope="module")
def cloud() -> Iterator[Cloud]:
    running = Cloud()
    try:
        yield running
    finally:
        running.stop()


def wait_until_idle(cloud: Cloud, region: str, name: str, budget_s: float) -> None:
    retry(stop=stop_after_delay(budget_s), wait=wait_fixed(0.02), retry=retry_if_result(lambda n: n != 0),
          reraise=True)(cloud.runtime.running)(region, name)
    assert cloud.runtime.running(region, name) == 0


def test_handler_sees_only_its_function_environment(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAMEDAY_HOST_ONLY", "host")
    name = cloud.function("eu-west-1", ENV_PROBE, env={"tableName": "T1", "status": "200"})
    keys = ["tableName", "status", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_LAMBDA_FUNCTION_NAME",
            "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "GAMEDAY_HOST_ONLY"]
    result = cloud.runtime.invoke("eu-west-1", name, {"keys": keys})
    seen = result["first"]
    assert seen == result["second"]  # os.environ.get and os.getenv agree
    assert seen["tableName"] == "T1" and seen["status"] == "200"
    assert seen["AWS_REGION"] == seen["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert seen["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert seen["AWS_ENDPOINT_URL"] == cloud.ctx.aws_endpoint_url
    assert seen["AWS_ACCESS_KEY_ID"]  # dummy credentials, never the host's
    assert seen["GAMEDAY_HOST_ONLY"] is None  # the host process's environment does not leak in
    assert result["function"] == name and result["version"] == "$LATEST"
    # ...and the host thread still sees the real environment, not the function's
    assert os.environ.get("GAMEDAY_HOST_ONLY") == "host"
    assert "tableName" not in os.environ and os.getenv("status") is None


def test_concurrent_invocations_each_see_their_own_region(cloud: Cloud) -> None:
    names = {region: cloud.function(region, ENV_PROBE, env={"status": f"status-{region}"}, name="gameday-Probe")
             for region in REGIONS}
    keys = ["status", "AWS_REGION"]

    def call(region: str) -> tuple[str, dict[str, Any]]:
        return region, cloud.runtime.invoke(region, names[region], {"keys": keys, "pause_s": 0.005})

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, [REGIONS[i % 2] for i in range(40)]))
    for region, result in results:
        expected = {"status": f"status-{region}", "AWS_REGION": region}
        assert result["first"] == expected and result["second"] == expected
    modules = {region: {r["module"] for reg, r in results if reg == region} for region in REGIONS}
    assert all(len(found) == 1 for found in modules.values())
    assert modules[REGIONS[0]] != modules[REGIONS[1]]  # one module instance per function per region


def test_each_function_gets_its_own_module_instance(cloud: Cloud) -> None:
    first = cloud.function("eu-west-1", ENV_PROBE)
    second = cloud.function("eu-west-1", ENV_PROBE)  # same code, another function
    a1 = cloud.runtime.invoke("eu-west-1", first, {})
    a2 = cloud.runtime.invoke("eu-west-1", first, {})
    b1 = cloud.runtime.invoke("eu-west-1", second, {})
    assert (a1["invocations"], a2["invocations"], b1["invocations"]) == (1, 2, 1)
    assert a1["module"] == a2["module"] != b1["module"]


def test_configuration_change_takes_effect_on_next_invocation_with_a_cold_start(cloud: Cloud) -> None:
    name = cloud.function("us-east-1", ENV_PROBE, env={"status": "200"})
    lam = cloud.client("lambda", "us-east-1")
    warm = [cloud.runtime.invoke("us-east-1", name, {"keys": ["status"]}) for _ in range(2)]
    assert [w["invocations"] for w in warm] == [1, 2] and warm[1]["first"] == {"status": "200"}
    update_configuration(lam, FunctionName=name, Environment={"Variables": {"status": "404"}})
    cold = cloud.runtime.invoke("us-east-1", name, {"keys": ["status"]})
    assert cold["first"] == {"status": "404"}
    assert cold["invocations"] == 1 and cold["module"] != warm[1]["module"]  # a fresh execution environment
    lam.update_function_code(FunctionName=name, ZipFile=zipped({"app.py": SLOW}))
    assert cloud.runtime.invoke("us-east-1", name, {"sleep_s": 0}) == {"slept": 0}


def test_an_update_is_in_progress_before_it_takes_effect_and_refuses_a_second_one(cloud: Cloud) -> None:
    # As on Lambda: accepted at once, applied later. Until then GetFunctionConfiguration shows the
    # new values InProgress, invocations keep the old environment, and another update is refused.
    name = cloud.function("us-east-1", ENV_PROBE, env={"status": "200"})
    lam = cloud.client("lambda", "us-east-1")
    cloud.runtime.invoke("us-east-1", name, {"keys": ["status"]})   # warm: the old environment answers at once
    default = cloud.ctx.settings.lambda_update_s
    cloud.ctx.settings.lambda_update_s = 300.0   # 3 s at scale 0.01: the checks below fit a loaded machine
    try:
        accepted = lam.update_function_configuration(FunctionName=name, Environment={"Variables": {"status": "404"}})
        started = time.monotonic()
        during = lam.get_function_configuration(FunctionName=name)
        old = cloud.runtime.invoke("us-east-1", name, {"keys": ["status"]})
        with pytest.raises(ClientError) as refused:
            lam.update_function_configuration(FunctionName=name, Description="meanwhile")
        in_progress_for = time.monotonic() - started
    finally:
        cloud.ctx.settings.lambda_update_s = default
    assert in_progress_for < 3.0, f"the checks took {in_progress_for:.2f} s: longer than the update lasts"
    assert accepted["LastUpdateStatus"] == "InProgress" and during["LastUpdateStatus"] == "InProgress"
    assert during["Environment"]["Variables"] == {"status": "404"}
    assert old["first"] == {"status": "200"}, "an update in progress already took effect"
    assert refused.value.response["Error"]["Code"] == "ResourceConflictException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    applied = wait_applied(lam, name)
    assert applied["LastUpdateStatus"] == "Successful" and time.monotonic() - started >= in_progress_for
    assert cloud.runtime.invoke("us-east-1", name, {"keys": ["status"]})["first"] == {"status": "404"}


def test_published_version_keeps_its_configuration(cloud: Cloud) -> None:
    name = cloud.function("eu-west-1", ENV_PROBE, env={"status": "200"})
    lam = cloud.client("lambda", "eu-west-1")
    version = lam.publish_version(FunctionName=name)["Version"]
    update_configuration(lam, FunctionName=name, Environment={"Variables": {"status": "404"}})
    pinned = cloud.runtime.invoke("eu-west-1", f"{name}:{version}", {"keys": ["status"]})
    latest = cloud.runtime.invoke("eu-west-1", name, {"keys": ["status"]})
    assert pinned["first"] == {"status": "200"} and pinned["version"] == version
    assert latest["first"] == {"status": "404"} and latest["version"] == "$LATEST"


def test_environment_change_is_recorded_as_key_names_only(cloud: Cloud) -> None:
    name = cloud.function("eu-west-1", ENV_PROBE, env={"status": "200", "keep": "same", "gone": "x"})
    since = cloud.ctx.truth.events()[-1]["seq"] if cloud.ctx.truth.events() else 0
    update_configuration(cloud.client("lambda", "eu-west-1"),
        FunctionName=name, Environment={"Variables": {"status": "secret-404", "keep": "same", "added": "y"}})
    events = [e for e in cloud.ctx.truth.events(since=since, kind="lambda_config") if e["function"] == name]
    assert len(events) == 1
    assert events[0]["region"] == "eu-west-1" and events[0]["keys_changed"] == ["added", "gone", "status"]
    assert "secret-404" not in json.dumps(events)
    update_configuration(cloud.client("lambda", "eu-west-1"), FunctionName=name, Description="no env change")
    assert [e for e in cloud.ctx.truth.events(since=events[0]["seq"], kind="lambda_config") if e["function"] == name] == []


def test_reserved_concurrency_zero_throttles_every_invocation(cloud: Cloud) -> None:
    name = cloud.function("eu-west-1", ENV_PROBE)
    lam = cloud.client("lambda", "eu-west-1")
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    for _ in range(3):
        with pytest.raises(Throttled):
            cloud.runtime.invoke("eu-west-1", name, {})
    lam.delete_function_concurrency(FunctionName=name)
    assert cloud.runtime.invoke("eu-west-1", name, {})["invocations"] == 1  # throttled calls never ran


def test_reserved_concurrency_caps_concurrent_executions(cloud: Cloud) -> None:
    name = cloud.function("eu-west-1", SLOW)
    cloud.client("lambda", "eu-west-1").put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=2)
    cloud.runtime.invoke("eu-west-1", name, {"sleep_s": 0})  # cold start out of the way
    hold_s = 0.4
    with ThreadPoolExecutor(2) as pool:
        running = [pool.submit(cloud.runtime.invoke, "eu-west-1", name, {"sleep_s": hold_s}) for _ in range(2)]
        retry(stop=stop_after_delay(hold_s), wait=wait_fixed(0.01), retry=retry_if_result(lambda n: n < 2),
              reraise=True)(cloud.runtime.running)("eu-west-1", name)
        with pytest.raises(Throttled):
            cloud.runtime.invoke("eu-west-1", name, {"sleep_s": 0})
        assert [f.result(timeout=5) for f in running] == [{"slept": hold_s}] * 2
    assert cloud.runtime.invoke("eu-west-1", name, {"sleep_s": 0}) == {"slept": 0}


def test_handler_errors_are_invocation_errors(cloud: Cloud) -> None:
    failing = cloud.function("eu-west-1", FAILING)
    with pytest.raises(InvocationError) as raised:
        cloud.runtime.invoke("eu-west-1", failing, {"n": 7})
    assert raised.value.error_type == "ValueError" and "bad input 7" in raised.value.message
    marshal = cloud.function("eu-west-1", FAILING, handler="app.not_serialisable")
    with pytest.raises(InvocationError) as raised:
        cloud.runtime.invoke("eu-west-1", marshal, {})
    assert raised.value.error_type == "Runtime.MarshalError"
    broken = cloud.function("eu-west-1", BROKEN_IMPORT)
    with pytest.raises(InvocationError) as raised:
        cloud.runtime.invoke("eu-west-1", broken, {})
    assert raised.value.error_type == "Runtime.ImportModuleError"
    missing = cloud.function("eu-west-1", ENV_PROBE, handler="app.no_such_function")
    with pytest.raises(InvocationError) as raised:
        cloud.runtime.invoke("eu-west-1", missing, {})
    assert raised.value.error_type == "Runtime.HandlerNotFound"
    with pytest.raises(FunctionNotFound):
        cloud.runtime.invoke("eu-west-1", "no-such-function", {})


def test_handler_in_a_package_with_sibling_modules(cloud: Cloud) -> None:
    name = cloud.function("eu-west-1", {
        "pkg/__init__.py": "",
        "pkg/entry.py": "import helper\ndef handler(event, context):\n    return helper.double(event['n'])\n",
        "helper.py": "def double(n):\n    return 2 * n\n",
    }, handler="pkg/entry.handler")
    assert cloud.runtime.invoke("eu-west-1", name, {"n": 21}) == 42


def test_invocation_timeout_leaves_the_handler_running_until_it_returns(cloud: Cloud) -> None:
    name = cloud.function("us-east-1", SLOW)
    cloud.runtime.invoke("us-east-1", name, {"sleep_s": 0})
    started = time.monotonic()
    with pytest.raises(InvocationTimeout):
        cloud.runtime.invoke("us-east-1", name, {"sleep_s": 0.6}, timeout=0.1)
    assert time.monotonic() - started < 0.5
    assert cloud.runtime.running("us-east-1", name) == 1  # Lambda keeps running past the caller's deadline
    wait_until_idle(cloud, "us-east-1", name, budget_s=5)


def test_a_cold_start_is_not_held_to_the_callers_deadline(cloud: Cloud) -> None:
    name = cloud.function("eu-west-1", SLOW)
    # The first call in a fresh execution environment (imports, lazy boto3 setup) is the cold start.
    assert cloud.runtime.invoke("eu-west-1", name, {"sleep_s": 0.3}, timeout=0.1) == {"slept": 0.3}
    with pytest.raises(InvocationTimeout):
        cloud.runtime.invoke("eu-west-1", name, {"sleep_s": 0.3}, timeout=0.1)
    wait_until_idle(cloud, "eu-west-1", name, budget_s=5)


def test_module_level_boto3_client_writes_to_its_own_region(cloud: Cloud) -> None:
    for region in REGIONS:
        cloud.client("dynamodb", region).create_table(
            TableName="RuntimeItems", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}], BillingMode="PAY_PER_REQUEST")
    names = {region: cloud.function(region, PUT, env={"tableName": "RuntimeItems"}, name="gameday-RuntimePut")
             for region in REGIONS}
    assert cloud.runtime.invoke("us-east-1", names["us-east-1"], {"id": 5}) == {"ok": True}
    found = {region: cloud.client("dynamodb", region).get_item(TableName="RuntimeItems", Key={"id": {"N": "5"}})
             for region in REGIONS}
    assert found["us-east-1"]["Item"]["written_region"] == {"S": "us-east-1"}
    assert "Item" not in found["eu-west-1"]


def test_in_process_aws_calls_reach_the_same_backends_without_a_socket(cloud: Cloud) -> None:
    cloud.client("dynamodb", "eu-west-1").create_table(
        TableName="InProcessItems", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}], BillingMode="PAY_PER_REQUEST")
    name = cloud.function("eu-west-1", PUT, env={"tableName": "InProcessItems"})
    # Nothing listens at this URL: only a call served in-process can succeed.
    ctx = CloudContext(settings=cloud.ctx.settings, regions=cloud.ctx.regions, aws_endpoint_url="http://127.0.0.1:9")
    runtime = LambdaRuntime(ctx, in_process_aws=True)
    runtime.install()
    try:
        assert runtime.invoke("eu-west-1", name, {"id": 11}) == {"ok": True}
    finally:
        runtime.stop()
    stored = cloud.client("dynamodb", "eu-west-1").get_item(TableName="InProcessItems", Key={"id": {"N": "11"}})
    assert stored["Item"]["written_region"] == {"S": "eu-west-1"}


def test_stop_removes_code_and_refuses_invocations(cloud: Cloud) -> None:
    runtime = LambdaRuntime(cloud.ctx)
    runtime.install()
    name = cloud.function("eu-west-1", ENV_PROBE)
    runtime.invoke("eu-west-1", name, {})
    root = runtime._root
    assert root is not None and any(Path(root).iterdir())
    runtime.stop()
    assert not Path(root).exists()
    with pytest.raises(FunctionNotFound):
        runtime.invoke("eu-west-1", name, {})
    assert cloud.runtime.invoke("eu-west-1", name, {})["invocations"] == 1  # the other runtime is unaffected
    assert threading.active_count() < 50


def test_invoke_here_runs_in_the_callers_thread_and_calls_back_at_the_deadline(cloud: Cloud) -> None:
    name = cloud.function("us-east-1", SLOW)
    fired: list[tuple[float, str]] = []

    def on_timeout() -> None:
        fired.append((time.monotonic(), threading.current_thread().name))

    # cold: the first call in a fresh execution environment is not held to the deadline
    assert cloud.runtime.invoke_here("us-east-1", name, {"sleep_s": 0.3}, 0.1, on_timeout) == {"slept": 0.3}
    assert fired == []
    # warm and quick: the deadline is cancelled, never fires
    assert cloud.runtime.invoke_here("us-east-1", name, {"sleep_s": 0}, 0.1, on_timeout) == {"slept": 0}
    # warm and slow: the callback fires at the deadline, from another thread, while the handler runs on
    started = time.monotonic()
    result = cloud.runtime.invoke_here("us-east-1", name, {"sleep_s": 0.6}, 0.1, on_timeout)
    assert result == {"slept": 0.6}  # the caller gets the late result too, and drops it
    [(when, thread)] = fired
    assert 0.1 <= when - started < 0.6 and thread != threading.current_thread().name
    wait_until_idle(cloud, "us-east-1", name, budget_s=5)


def test_watchdog_runs_due_callbacks_in_order_and_never_cancelled_ones() -> None:
    from gameday.localcloud.awslambda.watchdog import Watchdog

    watchdog = Watchdog("test-watchdog")
    try:
        calls: list[str] = []
        done = threading.Event()
        now = time.monotonic()
        watchdog.call_at(now + 0.10, lambda: calls.append("second"))
        cancelled = watchdog.call_at(now + 0.02, lambda: calls.append("cancelled"))
        watchdog.call_at(now + 0.05, lambda: calls.append("first"))
        watchdog.call_at(now + 0.15, done.set)
        cancelled.cancel()
        assert done.wait(5)
        assert calls == ["first", "second"]
    finally:
        watchdog.stop()


CROSS_REGION = '''
import os
import boto3
def handler(event, context):
    here = boto3.client("dynamodb")
    there = boto3.client("dynamodb", region_name=event["other"])
    here.put_item(TableName=event["table"], Item={"id": {"N": "21"}, "w": {"S": os.environ["AWS_REGION"]}})
    there.put_item(TableName=event["table"], Item={"id": {"N": "22"}, "w": {"S": "cross"}})
    try:
        here.put_item(TableName=event["table"], Item={"id": {"N": "21"}}, ConditionExpression="attribute_not_exists(id)")
        conditional = "no error"
    except here.exceptions.ConditionalCheckFailedException as exc:
        conditional = exc.response["Error"]["Code"]
    function = boto3.client("lambda").get_function(FunctionName=context.function_name)["Configuration"]
    # its own endpoint: not served in process, so signed as usual (the region comes from the signature)
    elsewhere = boto3.client("dynamodb", region_name=os.environ["AWS_REGION"], endpoint_url=event["endpoint"])
    elsewhere.put_item(TableName=event["table"], Item={"id": {"N": "23"}, "w": {"S": "own endpoint"}})
    return {"conditional": conditional, "function": function["FunctionName"]}
'''


def test_in_process_calls_are_unsigned_yet_reach_the_clients_region(cloud: Cloud) -> None:
    """DynamoDB calls served in-process skip SigV4; the region the client names still decides the
    table, AWS errors keep their shape, and other services go through the endpoint's app."""
    for region in REGIONS:
        cloud.client("dynamodb", region).create_table(
            TableName="InProcessCross", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}], BillingMode="PAY_PER_REQUEST")
    name = cloud.function("eu-west-1", CROSS_REGION)
    ctx = CloudContext(settings=cloud.ctx.settings, regions=cloud.ctx.regions, aws_endpoint_url="http://127.0.0.1:9")
    runtime = LambdaRuntime(ctx, in_process_aws=True)
    runtime.install()
    try:
        result = runtime.invoke("eu-west-1", name, {"table": "InProcessCross", "other": "us-east-1",
                                                    "endpoint": cloud.endpoint.url})
    finally:
        runtime.stop()
    assert result == {"conditional": "ConditionalCheckFailedException", "function": name}
    items = {region: {item["id"]["N"]: item["w"]["S"] for item in
                      cloud.client("dynamodb", region).scan(TableName="InProcessCross")["Items"]}
             for region in REGIONS}
    assert items == {"eu-west-1": {"21": "eu-west-1", "23": "own endpoint"}, "us-east-1": {"22": "cross"}}


def test_invoke_here_times_a_cold_start_by_its_init_allowance(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> None:
    from gameday.localcloud.awslambda import runtime as lambda_runtime

    monkeypatch.setattr(lambda_runtime, "INIT_LIMIT_S", 0.2)  # the real allowance is 10 s
    name = cloud.function("eu-west-1", "import time\ntime.sleep(0.8)\ndef handler(event, context):\n    return 'ready'\n")
    fired: list[float] = []
    started = time.monotonic()
    result = cloud.runtime.invoke_here("eu-west-1", name, {}, 0.1, lambda: fired.append(time.monotonic() - started))
    assert result == "ready"  # the init ran on; the caller was told at init allowance + timeout
    assert len(fired) == 1 and 0.3 <= fired[0] < 0.8


def test_code_directories_of_vanished_cloud_processes_are_swept(tmp_path: Path) -> None:
    import subprocess
    import sys

    from gameday.localcloud.awslambda.runtime import CODE_DIR_PREFIX, sweep_stale_code_dirs

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()  # a pid that has exited (SIGKILLed cloud)
    stale = tmp_path / f"{CODE_DIR_PREFIX}{gone}-abc"
    mine = tmp_path / f"{CODE_DIR_PREFIX}{os.getpid()}-def"   # a running cloud's
    legacy = tmp_path / f"{CODE_DIR_PREFIX}xyz"               # not named by a pid: not ours to judge
    for path in (stale, mine, legacy):
        (path / "digest").mkdir(parents=True)
    assert sweep_stale_code_dirs(tmp_path) == [stale]
    assert not stale.exists() and mine.exists() and legacy.exists()
