"""The API Gateway data plane, end to end: a REST API deployed through boto3 over HTTP in two
regions, reached with real HTTP at each region's own loopback address, handlers run in-process.

The reference handlers (gameday/infra/functions/) back /item and /health when present; otherwise small
handlers with the same contract (env `tableName` / `status`; like the article's, nothing in an answer
names the region).
"""

from __future__ import annotations

import io
import json
import random
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
import requests
from tenacity import retry, retry_if_result, stop_after_delay, wait_fixed

from gameday import infra
from gameday.localcloud.apigateway.dataplane import DataPlane, integration_timeout
from gameday.localcloud.awslambda.runtime import LambdaRuntime
from gameday.localcloud.motoglue.server import AwsEndpoint
from gameday.localcloud.process.context import CloudContext, CloudSettings, RegionSpec
from tests.support.lambda_updates import update_configuration

REGIONS = ("eu-west-1", "us-east-1")
TABLE = "DataPlaneItems"
CREDENTIALS = {"aws_access_key_id": "gameday-test", "aws_secret_access_key": "gameday-test"}
REFERENCE = infra.functions_dir()

FALLBACK = {
    "health.py": '''
import json, os
def handler(event, context):
    status = int(os.environ.get("status", "200"))
    return {"statusCode": status, "body": json.dumps("all done")}
''',
    "put_item.py": '''
import json, os, boto3
_table = boto3.resource("dynamodb").Table(os.environ["tableName"])
def handler(event, context):
    body = json.loads(event["body"])
    _table.put_item(Item={"id": body["id"], "name": body["name"], "written_region": os.environ["AWS_REGION"]})
    return {"statusCode": 200, "body": json.dumps({"id": body["id"]})}
''',
    "get_item.py": '''
import json, os, boto3
_table = boto3.resource("dynamodb").Table(os.environ["tableName"])
def handler(event, context):
    item = _table.get_item(Key={"id": int(event["pathParameters"]["itemId"])}).get("Item")
    headers = {"Content-Type": "application/json"}
    if item is None:
        return {"statusCode": 404, "headers": headers, "body": json.dumps({"error": "item not found"})}
    return {"statusCode": 200, "headers": headers, "body": json.dumps({"id": int(item["id"]), "name": item["name"]})}
''',
}
TEST_HANDLERS = {
    "echo.py": '''
import json
def handler(event, context):
    return {"statusCode": 200, "headers": {"Content-Type": "application/json", "x-echo": "yes"},
            "multiValueHeaders": {"x-multi": ["a", "b"]}, "body": json.dumps(event)}
''',
    "boom.py": '''
def handler(event, context):
    raise RuntimeError("boom")
''',
    "malformed.py": '''
def handler(event, context):
    return {"statusCode": 200, "body": {"not": "a string"}}
''',
    "slow.py": '''
import time
def handler(event, context):
    time.sleep(float((event["queryStringParameters"] or {}).get("sleep_s", "0")))
    return {"statusCode": 200, "body": "slept"}
''',
}
# route -> (function name, module)
ROUTES = {
    ("item", "POST"): ("gameday-PutItem", "put_item"),
    ("item/{itemId}", "GET"): ("gameday-GetItem", "get_item"),
    ("health", "GET"): ("gameday-Health", "health"),
    ("echo/{proxy+}", "ANY"): ("test-Echo", "echo"),
    ("boom", "GET"): ("test-Boom", "boom"),
    ("malformed", "GET"): ("test-Malformed", "malformed"),
    ("slow", "GET"): ("test-Slow", "slow"),
}


def zipped(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, source in files.items():
            archive.writestr(name, source)
    return buf.getvalue()


def handler_sources() -> dict[str, str]:
    sources = dict(TEST_HANDLERS)
    for name, fallback in FALLBACK.items():
        reference = REFERENCE / name
        sources[name] = reference.read_text() if reference.is_file() else fallback
    return sources


class Cloud:
    """AWS endpoint + Lambda runtime + data plane for two regions, with the API deployed."""

    def __init__(self) -> None:
        a, b = random.randint(1, 254), random.randint(1, 254)
        # 1.5 s: short enough for the 504 test, long enough that a warm handler on a loaded
        # machine (other test workers, e2e clouds) is not cut off by a spurious 504
        self.ctx = CloudContext(settings=CloudSettings(regions=list(REGIONS), data_plane_port=0,
                                                       integration_timeout_floor_s=1.5),
                                regions=[RegionSpec(REGIONS[0], f"127.{a}.{b}.11"),
                                         RegionSpec(REGIONS[1], f"127.{a}.{b}.12")])
        self.runtime = LambdaRuntime(self.ctx)
        self.runtime.install()
        self.endpoint = AwsEndpoint("127.0.0.1", 0, self.ctx.control)
        self.endpoint.start()
        self.ctx.aws_endpoint_url = self.endpoint.url
        self.dataplane = DataPlane(self.ctx, self.runtime)
        self.dataplane.start()
        self.api_ids: dict[str, str] = {}
        self.role = self.client("iam", "us-east-1").create_role(
            RoleName=f"dataplane-{a}-{b}", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
        )["Role"]["Arn"]
        # The handlers' calls run as this role (IAM is enforced): what they need, as on AWS.
        self.client("iam", "us-east-1").put_role_policy(
            RoleName=f"dataplane-{a}-{b}", PolicyName="handlers", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["dynamodb:*", "lambda:GetFunction"], "Resource": "*"}]}))
        for region in REGIONS:
            self._deploy(region)

    def client(self, service: str, region: str) -> Any:
        return boto3.client(service, region_name=region, endpoint_url=self.endpoint.url, **CREDENTIALS)

    def _deploy(self, region: str) -> None:
        self.client("dynamodb", region).create_table(
            TableName=TABLE, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}], BillingMode="PAY_PER_REQUEST")
        code = zipped(handler_sources())
        lam = self.client("lambda", region)
        env = {"gameday-Health": {"status": "200"}, "gameday-PutItem": {"tableName": TABLE},
               "gameday-GetItem": {"tableName": TABLE}}
        arns = {}
        for function, module in ROUTES.values():
            arns[function] = lam.create_function(
                FunctionName=function, Runtime="python3.11", Role=self.role, Handler=f"{module}.handler",
                Code={"ZipFile": code}, Environment={"Variables": env.get(function, {})})["FunctionArn"]
        self.api_ids[region] = self.rest_api(region, "gameday", {route: arns[fn] for route, (fn, _) in ROUTES.items()},
                                             stage="prod")

    def rest_api(self, region: str, name: str, routes: dict[tuple[str, str], str], stage: str | None) -> str:
        apig = self.client("apigateway", region)
        api = apig.create_rest_api(name=name)["id"]
        ids = {"": next(r["id"] for r in apig.get_resources(restApiId=api)["items"] if r["path"] == "/")}
        for (path, method), function_arn in routes.items():
            parent = ""
            for part in path.split("/"):
                child = f"{parent}/{part}".lstrip("/")
                if child not in ids:
                    ids[child] = apig.create_resource(restApiId=api, parentId=ids[parent], pathPart=part)["id"]
                parent = child
            apig.put_method(restApiId=api, resourceId=ids[path], httpMethod=method, authorizationType="NONE")
            apig.put_integration(
                restApiId=api, resourceId=ids[path], httpMethod=method, type="AWS_PROXY", integrationHttpMethod="POST",
                uri=f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{function_arn}/invocations")
        if stage:
            apig.create_deployment(restApiId=api, stageName=stage)
        return api

    def url(self, region: str, path: str = "") -> str:
        return f"http://{self.ctx.region(region).address}:{self.ctx.data_plane_port}/prod{path}"

    def set_env(self, region: str, function: str, variables: dict[str, str]) -> None:
        update_configuration(self.client("lambda", region),
            FunctionName=function, Environment={"Variables": variables})

    def stop(self) -> None:
        self.dataplane.stop()
        self.runtime.stop()
        self.endpoint.stop()


@pytest.fixture(scope="module")
def cloud() -> Iterator[Cloud]:
    running = Cloud()
    try:
        yield running
    finally:
        running.stop()


def assert_gateway_error(response: requests.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"message": message}
    assert response.headers["x-amzn-RequestId"]


def test_every_region_listens_on_its_own_address_on_one_port(cloud: Cloud) -> None:
    assert cloud.ctx.data_plane_port > 0
    for region in REGIONS:
        response = requests.get(cloud.url(region, "/health"), timeout=5)
        assert response.status_code == 200
        assert "x-gameday-region" not in response.headers   # the answer does not name its region
        assert response.headers["x-amzn-RequestId"]


def test_each_region_answers_with_its_own_environment_concurrently(cloud: Cloud) -> None:
    cloud.set_env("us-east-1", "gameday-Health", {"status": "404"})
    try:
        def get(region: str) -> tuple[str, int]:
            response = requests.get(cloud.url(region, "/health"), timeout=5)
            return region, response.status_code

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(get, [REGIONS[i % 2] for i in range(40)]))
        expected = {"eu-west-1": 200, "us-east-1": 404}   # each region's own environment, by its address
        assert all(status == expected[region] for region, status in answers), answers
    finally:
        cloud.set_env("us-east-1", "gameday-Health", {"status": "200"})
    assert requests.get(cloud.url("us-east-1", "/health"), timeout=5).status_code == 200


def test_update_function_configuration_flips_health_on_the_next_request(cloud: Cloud) -> None:
    with requests.Session() as session:  # one keep-alive connection throughout
        assert session.get(cloud.url("eu-west-1", "/health"), timeout=5).status_code == 200
        since = cloud.ctx.truth.events()[-1]["seq"] if cloud.ctx.truth.events() else 0
        cloud.set_env("eu-west-1", "gameday-Health", {"status": "404"})
        try:
            assert session.get(cloud.url("eu-west-1", "/health"), timeout=5).status_code == 404
            assert session.get(cloud.url("us-east-1", "/health"), timeout=5).status_code == 200
        finally:
            cloud.set_env("eu-west-1", "gameday-Health", {"status": "200"})
        assert session.get(cloud.url("eu-west-1", "/health"), timeout=5).status_code == 200
    events = [e for e in cloud.ctx.truth.events(since=since, kind="lambda_config") if e["function"] == "gameday-Health"]
    assert [(e["region"], e["keys_changed"]) for e in events] == [("eu-west-1", ["status"])] * 2
    assert "404" not in json.dumps(events)


def test_reserved_concurrency_zero_gives_internal_server_error(cloud: Cloud) -> None:
    lam = cloud.client("lambda", "us-east-1")
    lam.put_function_concurrency(FunctionName="gameday-Health", ReservedConcurrentExecutions=0)
    try:
        assert_gateway_error(requests.get(cloud.url("us-east-1", "/health"), timeout=5), 500, "Internal server error")
        assert requests.get(cloud.url("eu-west-1", "/health"), timeout=5).status_code == 200
    finally:
        lam.delete_function_concurrency(FunctionName="gameday-Health")
    assert requests.get(cloud.url("us-east-1", "/health"), timeout=5).status_code == 200


def test_reserved_concurrency_caps_executions_behind_the_api(cloud: Cloud) -> None:
    lam = cloud.client("lambda", "eu-west-1")
    hold_s = integration_timeout(cloud.ctx) / 2
    lam.put_function_concurrency(FunctionName="test-Slow", ReservedConcurrentExecutions=1)
    try:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(requests.get, cloud.url("eu-west-1", f"/slow?sleep_s={hold_s}"), timeout=5)
            retry(stop=stop_after_delay(hold_s), wait=wait_fixed(0.01), retry=retry_if_result(lambda n: n < 1),
                  reraise=True)(cloud.runtime.running)("eu-west-1", "test-Slow")
            assert_gateway_error(requests.get(cloud.url("eu-west-1", "/slow"), timeout=5), 500, "Internal server error")
            assert first.result().status_code == 200
    finally:
        lam.delete_function_concurrency(FunctionName="test-Slow")


def test_unknown_routes_get_missing_authentication_token(cloud: Cloud) -> None:
    for method, path in [("GET", "/nope"), ("GET", "/item/1/extra"), ("DELETE", "/health"), ("PUT", "/item"),
                         ("GET", "/item"), ("GET", "")]:
        response = requests.request(method, cloud.url("eu-west-1", path), timeout=5)
        assert_gateway_error(response, 403, "Missing Authentication Token")
        assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_api_host_header_picks_the_api_and_requires_a_stage(cloud: Cloud) -> None:
    api = cloud.api_ids["eu-west-1"]
    base = f"http://{cloud.ctx.region('eu-west-1').address}:{cloud.ctx.data_plane_port}"
    host = {"Host": f"{api}.execute-api.eu-west-1.amazonaws.com"}
    assert requests.get(f"{base}/prod/health", headers=host, timeout=5).status_code == 200
    assert_gateway_error(requests.get(f"{base}/beta/health", headers=host, timeout=5), 403, "Forbidden")
    assert_gateway_error(requests.get(f"{base}/health", headers=host, timeout=5), 403, "Forbidden")
    other = {"Host": "nosuchapi.execute-api.eu-west-1.amazonaws.com"}
    assert_gateway_error(requests.get(f"{base}/prod/health", headers=other, timeout=5), 403, "Forbidden")


def test_api_created_after_start_is_served_once_its_stage_exists(cloud: Cloud) -> None:
    arn = cloud.client("lambda", "us-east-1").get_function(FunctionName="test-Echo")["Configuration"]["FunctionArn"]
    api = cloud.rest_api("us-east-1", "late", {("late", "GET"): arn}, stage=None)
    base = f"http://{cloud.ctx.region('us-east-1').address}:{cloud.ctx.data_plane_port}"
    host = {"Host": f"{api}.execute-api.us-east-1.amazonaws.com"}
    assert_gateway_error(requests.get(f"{base}/prod/late", headers=host, timeout=5), 403, "Forbidden")
    cloud.client("apigateway", "us-east-1").create_deployment(restApiId=api, stageName="prod")
    response = requests.get(f"{base}/prod/late", headers=host, timeout=5)
    assert response.status_code == 200
    assert response.json()["requestContext"]["apiId"] == api and response.json()["resource"] == "/late"


def test_handler_exception_gives_bad_gateway(cloud: Cloud) -> None:
    assert_gateway_error(requests.get(cloud.url("eu-west-1", "/boom"), timeout=5), 502, "Internal server error")


def test_malformed_proxy_response_gives_bad_gateway(cloud: Cloud) -> None:
    assert_gateway_error(requests.get(cloud.url("us-east-1", "/malformed"), timeout=5), 502, "Internal server error")


def test_handler_past_the_integration_timeout_gives_gateway_timeout(cloud: Cloud) -> None:
    budget = integration_timeout(cloud.ctx)
    assert requests.get(cloud.url("us-east-1", "/slow"), timeout=5).status_code == 200  # warm: a cold start is not timed
    try:
        started = time.monotonic()
        response = requests.get(cloud.url("us-east-1", f"/slow?sleep_s={budget * 2}"), timeout=budget * 10)
        elapsed = time.monotonic() - started
        assert_gateway_error(response, 504, "Endpoint request timed out")
        assert budget <= elapsed < budget * 2
    finally:
        retry(stop=stop_after_delay(budget * 4), wait=wait_fixed(0.02), retry=retry_if_result(lambda n: n != 0),
              reraise=True)(cloud.runtime.running)("us-east-1", "test-Slow")


def test_put_item_lands_in_the_serving_regions_table(cloud: Cloud) -> None:
    item_id = random.randint(10**6, 10**9)
    response = requests.post(cloud.url("eu-west-1", "/item"), json={"id": item_id, "name": "written"}, timeout=5)
    assert response.status_code == 200, response.text
    stored = cloud.client("dynamodb", "eu-west-1").get_item(TableName=TABLE, Key={"id": {"N": str(item_id)}})
    assert stored["Item"]["name"] == {"S": "written"}
    assert stored["Item"]["written_region"] == {"S": "eu-west-1"}
    elsewhere = cloud.client("dynamodb", "us-east-1").get_item(TableName=TABLE, Key={"id": {"N": str(item_id)}})
    assert "Item" not in elsewhere  # this fixture has no replication
    read = requests.get(cloud.url("eu-west-1", f"/item/{item_id}"), timeout=5)
    assert read.status_code == 200 and read.json()["name"] == "written"
    assert requests.get(cloud.url("us-east-1", f"/item/{item_id}"), timeout=5).status_code == 404


def test_proxy_event_carries_the_request(cloud: Cloud) -> None:
    response = requests.post(cloud.url("eu-west-1", "/echo/a/b?x=1&x=2&y=3"), data="hello",
                             headers={"X-Test": "v", "Content-Type": "text/plain"}, timeout=5)
    assert response.status_code == 200
    event = response.json()
    assert event["resource"] == "/echo/{proxy+}"
    assert event["path"] == "/echo/a/b"
    assert event["httpMethod"] == "POST"
    assert event["pathParameters"] == {"proxy": "a/b"}
    assert event["queryStringParameters"] == {"x": "2", "y": "3"}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": ["3"]}
    assert event["headers"]["X-Test"] == "v" and event["multiValueHeaders"]["X-Test"] == ["v"]
    assert event["body"] == "hello" and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["stage"] == "prod" and context["path"] == "/prod/echo/a/b" and context["httpMethod"] == "POST"
    assert context["identity"]["sourceIp"].startswith("127.")
    assert context["requestId"] == response.headers["x-amzn-RequestId"]
    assert response.headers["x-echo"] == "yes" and response.headers["x-multi"] == "a, b"
    empty = requests.get(cloud.url("eu-west-1", "/echo/z"), timeout=5).json()
    assert empty["body"] is None and empty["queryStringParameters"] is None


def test_stop_closes_keep_alive_connections(cloud: Cloud) -> None:
    a, b = random.randint(1, 254), random.randint(1, 254)
    ctx = CloudContext(settings=CloudSettings(regions=list(REGIONS)),
                       regions=[RegionSpec(REGIONS[0], f"127.{a}.{b}.21"), RegionSpec(REGIONS[1], f"127.{a}.{b}.22")])
    dataplane = DataPlane(ctx, cloud.runtime)
    dataplane.start()
    session = requests.Session()
    try:
        url = f"http://{ctx.regions[0].address}:{ctx.data_plane_port}/prod/health"
        assert session.get(url, timeout=5).status_code == 200  # routes to the same moto state
    finally:
        started = time.monotonic()
        dataplane.stop()
        session.close()
    assert time.monotonic() - started < 2
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=2)


# --- HTTP/1.1 on the wire (gameday/localcloud/apigateway/http_listener.py), spoken over raw sockets ---

def _raw_exchange(cloud: Cloud, payload: bytes, responses: int = 1) -> list[tuple[int, dict[str, str], bytes]]:
    """Sends payload on one connection; reads `responses` Content-Length-framed answers in order."""
    import socket

    address = cloud.ctx.region("eu-west-1").address
    with socket.create_connection((address, cloud.ctx.data_plane_port), timeout=5) as sock:
        sock.sendall(payload)
        stream = sock.makefile("rb")
        answers = []
        for _ in range(responses):
            status_line = stream.readline().decode("latin-1")
            headers: dict[str, str] = {}
            while (line := stream.readline().decode("latin-1").rstrip("\r\n")):
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = stream.read(int(headers.get("content-length", "0")))
            answers.append((int(status_line.split(" ")[1]), headers, body))
        return answers


def test_pipelined_keep_alive_requests_are_answered_in_order(cloud: Cloud) -> None:
    host = f"Host: {cloud.ctx.region('eu-west-1').address}\r\n"
    first = f"POST /prod/echo/one HTTP/1.1\r\n{host}Content-Length: 3\r\n\r\nabc".encode()
    second = f"GET /prod/echo/two?q=1 HTTP/1.1\r\n{host}Connection: close\r\n\r\n".encode()
    (s1, h1, b1), (s2, h2, b2) = _raw_exchange(cloud, first + second, responses=2)
    assert (s1, json.loads(b1)["path"], json.loads(b1)["body"]) == (200, "/echo/one", "abc")
    assert "connection" not in h1  # kept alive
    assert (s2, json.loads(b2)["path"], h2.get("connection")) == (200, "/echo/two", "close")


def test_chunked_request_body_reaches_the_handler_whole(cloud: Cloud) -> None:
    host = f"Host: {cloud.ctx.region('eu-west-1').address}\r\n"
    payload = (f"POST /prod/echo/c HTTP/1.1\r\n{host}Transfer-Encoding: chunked\r\n\r\n"
               "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n").encode()
    [(status, _, body)] = _raw_exchange(cloud, payload)
    assert status == 200 and json.loads(body)["body"] == "hello world"


def test_expect_continue_is_answered_before_the_body(cloud: Cloud) -> None:
    import socket

    address = cloud.ctx.region("eu-west-1").address
    with socket.create_connection((address, cloud.ctx.data_plane_port), timeout=5) as sock:
        sock.sendall(f"POST /prod/echo/e HTTP/1.1\r\nHost: {address}\r\nContent-Length: 4\r\n"
                     "Expect: 100-continue\r\n\r\n".encode())
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")  # curl waits for this
        sock.sendall(b"body")
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 ") and b'"body": "body"' in answer


def test_malformed_request_gets_400_and_the_connection_closes(cloud: Cloud) -> None:
    [(status, headers, body)] = _raw_exchange(cloud, b"NOT A REQUEST\r\n\r\n")
    assert status == 400 and headers.get("connection") == "close"
    assert json.loads(body) == {"message": "Bad request"}


def test_body_over_the_payload_limit_gets_413(cloud: Cloud) -> None:
    from gameday.localcloud.apigateway.dataplane import MAX_BODY_BYTES

    address = cloud.ctx.region("eu-west-1").address
    response = requests.post(cloud.url("eu-west-1", "/echo/big"), data=b"x" * (MAX_BODY_BYTES + 1),
                             headers={"Host": address}, timeout=10)
    assert response.status_code == 413
    assert response.json() == {"message": "Request Too Long"}


def test_http_1_0_request_is_answered_and_closed(cloud: Cloud) -> None:
    [(status, headers, body)] = _raw_exchange(cloud, b"GET /prod/echo/old HTTP/1.0\r\n\r\n")
    assert status == 200 and headers.get("connection") == "close"
    assert json.loads(body)["path"] == "/echo/old"


def test_requests_completed_before_a_malformed_one_are_answered_first(cloud: Cloud) -> None:
    host = f"Host: {cloud.ctx.region('eu-west-1').address}\r\n"
    good = f"GET /prod/echo/first HTTP/1.1\r\n{host}\r\n".encode()
    (s1, _, b1), (s2, h2, _) = _raw_exchange(cloud, good + b"GARBAGE\r\n\r\n", responses=2)
    assert (s1, json.loads(b1)["path"]) == (200, "/echo/first")
    assert s2 == 400 and h2.get("connection") == "close"


def test_a_request_that_closes_the_connection_ends_it_without_an_error_for_what_follows(cloud: Cloud) -> None:
    import socket

    address = cloud.ctx.region("eu-west-1").address
    with socket.create_connection((address, cloud.ctx.data_plane_port), timeout=5) as sock:
        sock.sendall(b"GET /prod/echo/only HTTP/1.0\r\n\r\nGET /prod/echo/ignored HTTP/1.1\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.count(b"HTTP/1.1 ") == 1 and answer.startswith(b"HTTP/1.1 200 ")
    assert b"/echo/only" in answer


def test_an_upgrade_request_is_answered_as_http_1_1_and_closed(cloud: Cloud) -> None:
    host = f"Host: {cloud.ctx.region('eu-west-1').address}\r\n"
    h2c = (f"GET /prod/echo/up HTTP/1.1\r\n{host}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
           "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n").encode()
    [(status, headers, body)] = _raw_exchange(cloud, h2c)
    assert status == 200 and headers.get("connection") == "close" and json.loads(body)["path"] == "/echo/up"
    with_body = (f"POST /prod/echo/up HTTP/1.1\r\n{host}Connection: Upgrade\r\nUpgrade: websocket\r\n"
                 "Content-Length: 3\r\n\r\nabc").encode()
    [(status, _, _)] = _raw_exchange(cloud, with_body)
    assert status == 400  # the parser hands the body to the new protocol: never run a handler without it


def test_headers_over_the_limit_get_400(cloud: Cloud) -> None:
    from gameday.localcloud.apigateway.http_listener import MAX_HEADER_BYTES

    host = f"Host: {cloud.ctx.region('eu-west-1').address}\r\n"
    payload = f"GET /prod/echo/h HTTP/1.1\r\n{host}X-Big: {'a' * MAX_HEADER_BYTES}\r\n\r\n".encode()
    [(status, headers, _)] = _raw_exchange(cloud, payload)
    assert status == 400 and headers.get("connection") == "close"


def test_stop_does_not_wait_for_a_handler_already_answered_504(cloud: Cloud) -> None:
    a, b = random.randint(1, 254), random.randint(1, 254)
    settings = CloudSettings(regions=list(REGIONS), integration_timeout_floor_s=0.5)
    ctx = CloudContext(settings=settings,
                       regions=[RegionSpec(REGIONS[0], f"127.{a}.{b}.31"), RegionSpec(REGIONS[1], f"127.{a}.{b}.32")])
    dataplane = DataPlane(ctx, cloud.runtime)
    dataplane.start()
    budget = integration_timeout(ctx)
    url = f"http://{ctx.regions[1].address}:{ctx.data_plane_port}/prod/slow"
    try:
        assert requests.get(url, timeout=5).status_code == 200  # warm
        response = requests.get(f"{url}?sleep_s={budget + 5}", timeout=budget * 10)
        assert response.status_code == 504  # the handler sleeps on for another 5 s
    finally:
        started = time.monotonic()
        dataplane.stop()
    assert time.monotonic() - started < 2  # it waited 5 s per region for that handler before
    retry(stop=stop_after_delay(budget + 10), wait=wait_fixed(0.05), retry=retry_if_result(lambda n: n != 0),
          reraise=True)(cloud.runtime.running)("us-east-1", "test-Slow")
