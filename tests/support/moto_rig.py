"""Fixtures for the harness tests that need only the AWS API (moto server over HTTP).
Imported by the test modules that use them (`from moto_rig import ...`), not a conftest,
so they never clash with fixtures other tests in this directory define.

`aws_endpoint` is moto's server on a free loopback port (gameday.localcloud.motoglue.server: the
AWS API itself; the harness code under test reaches it only through boto3). `health_site`
is a small real HTTP server per region standing in for API Gateway + the Health
function: it answers GET .../health with the status held in the function's environment
as the AWS API reports it (the reference handler's rule), or always 200 when told to
ignore it (a broken handler). Tests needing the full local cloud use `local_cloud`
from tests/conftest.py instead.
"""

from __future__ import annotations

import io
import json
import threading
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest

from gameday.deployment import Deployment, parse_deployment
from gameday.localcloud.motoglue.server import AwsEndpoint
from gameday.localcloud.process.context import ControlRoutes

REGIONS = ("eu-west-1", "us-east-1")
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture(scope="session")
def aws_endpoint() -> Iterator[str]:
    endpoint = AwsEndpoint("127.0.0.1", 0, ControlRoutes())
    endpoint.start()
    try:
        yield endpoint.url
    finally:
        endpoint.stop()


@pytest.fixture(autouse=True)
def _aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness must work with no credentials configured (dummy ones for an endpoint)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/gameday-credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/gameday-config")


def lambda_client(endpoint: str, region: str) -> Any:
    return boto3.client("lambda", region_name=region, endpoint_url=endpoint, **CREDENTIALS)


def env_of(endpoint: str, region: str, function: str) -> dict[str, str] | None:
    config = lambda_client(endpoint, region).get_function_configuration(FunctionName=function)
    env = config.get("Environment")
    return None if env is None else dict(env.get("Variables") or {})


def create_function(endpoint: str, region: str, name: str, variables: dict[str, str]) -> None:
    iam = boto3.client("iam", region_name=region, endpoint_url=endpoint, **CREDENTIALS)
    try:
        role = iam.get_role(RoleName="gameday-test-role")["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        role = iam.create_role(RoleName="gameday-test-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("health.py", "def handler(event, context):\n    return {'statusCode': 200}\n")
    kwargs: dict[str, Any] = {}
    if variables:
        kwargs["Environment"] = {"Variables": variables}
    lambda_client(endpoint, region).create_function(
        FunctionName=name, Runtime="python3.11", Role=role, Handler="health.handler",
        Code={"ZipFile": buf.getvalue()}, **kwargs)


@dataclass
class HealthSite:
    """One HTTP server; the region is the first path segment: /{region}/prod/health."""

    endpoint: str
    functions: dict[str, str] = field(default_factory=dict)   # region -> function name
    ignore_env: bool = False
    requests_seen: int = 0
    url: str = ""

    def status_for(self, region: str) -> int:
        if self.ignore_env:
            return 200
        env = env_of(self.endpoint, region, self.functions[region]) or {}
        raw = env.get("status", "200")
        return int(raw) if raw.isdigit() and 100 <= int(raw) <= 599 else 500


@pytest.fixture
def health_site(aws_endpoint: str) -> Iterator[HealthSite]:
    site = HealthSite(endpoint=aws_endpoint)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            site.requests_seen += 1
            parts = self.path.strip("/").split("/")
            if len(parts) != 3 or parts[1:] != ["prod", "health"] or parts[0] not in site.functions:
                code = 404
            else:
                code = site.status_for(parts[0])
            body = json.dumps({"status": code}).encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    site.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def make_deployment(endpoint: str, site_url: str, health_function: str, time_scale: float = 0.01) -> Deployment:
    """A 2-region failover description for functions on the moto endpoint."""
    regions = []
    for name, role in zip(REGIONS, ("PRIMARY", "SECONDARY"), strict=True):
        regions.append({
            "name": name, "api_url": f"{site_url}/{name}/prod", "health_check_id": f"hc-{name}",
            "functions": {"put": "gameday-PutItem", "get": "gameday-GetItem", "health": health_function},
            "failover_role": role,
        })
    return parse_deployment({
        "gameday_deployment": 1, "target": "local", "aws_endpoint_url": endpoint, "time_scale": time_scale,
        "domain": "api.gameday.test", "global_url": "http://api.gameday.test:8080",
        "dns_resolver": "127.0.0.1:53", "hosted_zone_id": "ZTEST", "routing": "failover",
        "table": {"name": "MyGlobalTable", "version": "2017.11.29"}, "regions": regions,
    }, source="test")


@dataclass
class FunctionUnderTest:
    name: str
    deployment: Deployment
    endpoint: str
    site: HealthSite

    def env(self, region: str = REGIONS[0]) -> dict[str, str] | None:
        return env_of(self.endpoint, region, self.name)


@pytest.fixture
def health_function(aws_endpoint: str, health_site: HealthSite, request: pytest.FixtureRequest) -> FunctionUnderTest:
    """A fresh Health function in both regions with {status, tableName, SECRET_CANARY};
    parametrize indirectly with a dict to choose other variables."""
    variables = getattr(request, "param", None)
    if variables is None:
        variables = {"status": "200", "tableName": "x", "SECRET_CANARY": "canary-" + uuid.uuid4().hex}
    name = "gameday-Health-" + uuid.uuid4().hex[:8]
    for region in REGIONS:
        create_function(aws_endpoint, region, name, variables)
        health_site.functions[region] = name
    return FunctionUnderTest(name, make_deployment(aws_endpoint, health_site.url, name), aws_endpoint, health_site)
