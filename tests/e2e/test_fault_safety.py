"""After every run (passed, failed, interrupted) each Health function's environment is
identical to before, other variables included; a run killed with SIGKILL in the middle of
a fault is repaired by `gameday restore`. Bad input changes nothing and calls no AWS API."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import yaml
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from gameday.localcloud.process.launcher import LocalCloud
from tests.support.lambda_updates import update_configuration
from tests.support.run_helpers import ensure_stopped, gameday, popen_gameday

CANARY_VALUE = "canary-5e3c7e7-value"
CANARY = {"status": "200", "OTHER_SETTING": CANARY_VALUE, "DB_PASSWORD": "hunter2-canary", "EMPTY": ""}


def assert_no_canary_under(report_dir: Path) -> None:
    """No Lambda environment value other than the flipped key reaches run output or reports."""
    files = [p for p in report_dir.rglob("*") if p.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        assert CANARY_VALUE.encode() not in data and b"hunter2-canary" not in data, path


@pytest.fixture
def slow_cloud() -> Iterator[LocalCloud]:
    """Time scale 0.05: a fault lasts seconds, long enough to interrupt a run in the middle."""
    with LocalCloud(time_scale=0.05) as cloud:
        yield cloud


def lambda_client(cloud: LocalCloud, region: str):
    return boto3.client("lambda", region_name=region, endpoint_url=cloud.aws_endpoint_url,
                        aws_access_key_id="gameday-local", aws_secret_access_key="gameday-local")


def health_functions(cloud: LocalCloud) -> list[tuple[str, str]]:
    described = yaml.safe_load(Path(cloud.deployment_path).read_text())
    return [(r["name"], r["functions"]["health"]) for r in described["regions"]]


def environments(cloud: LocalCloud) -> dict[str, dict[str, str]]:
    return {region: lambda_client(cloud, region).get_function_configuration(FunctionName=fn)
            .get("Environment", {}).get("Variables", {}) for region, fn in health_functions(cloud)}


def set_canary_environment(cloud: LocalCloud) -> dict[str, dict[str, str]]:
    for region, fn in health_functions(cloud):
        update_configuration(lambda_client(cloud, region), FunctionName=fn,
                             Environment={"Variables": dict(CANARY)})
    return environments(cloud)


def wait_until_flipped(cloud: LocalCloud, budget_s: float = 60) -> str:
    """The region whose Health env says 404, as soon as one does."""
    def flipped() -> str | None:
        for region, env in environments(cloud).items():
            if env.get("status") == "404":
                return region
        return None

    return Retrying(stop=stop_after_delay(budget_s), wait=wait_fixed(0.02), retry=retry_if_result(lambda r: r is None),
                    reraise=True)(flipped)


def test_environment_identical_after_passing_and_failing_runs(slow_cloud: LocalCloud, tmp_path: Path) -> None:
    before = set_canary_environment(slow_cloud)
    passed = gameday("run", "--deployment", str(slow_cloud.deployment_path), "-k", "region_failover", "--report-dir", str(tmp_path),
                     "--no-html", report_dir=tmp_path)
    assert passed.code == 0, passed.stdout[-3000:]
    assert environments(slow_cloud) == before

    # A failing run (the survivor cannot write) restores just as exactly.
    described = yaml.safe_load(Path(slow_cloud.deployment_path).read_text())
    survivor = described["regions"][1]
    lambda_client(slow_cloud, survivor["name"]).put_function_concurrency(
        FunctionName=survivor["functions"]["put"], ReservedConcurrentExecutions=0)
    failed = gameday("run", "--deployment", str(slow_cloud.deployment_path), "-k", "region_failover", "--fail-region",
                     described["regions"][0]["name"], "--report-dir", str(tmp_path), "--no-html", report_dir=tmp_path)
    assert failed.code != 0
    assert environments(slow_cloud) == before
    assert_no_canary_under(tmp_path)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_restores(slow_cloud: LocalCloud, tmp_path: Path, sig: int) -> None:
    before = set_canary_environment(slow_cloud)
    proc = popen_gameday("run", "--deployment", str(slow_cloud.deployment_path), "-k", "region_failover", "--report-dir", str(tmp_path),
                         "--no-html")
    try:
        wait_until_flipped(slow_cloud)
        proc.send_signal(sig)
        proc.communicate(timeout=120)
    finally:
        ensure_stopped(proc)
    assert proc.returncode != 0
    assert environments(slow_cloud) == before


def test_sigkill_mid_fault_then_gameday_restore(slow_cloud: LocalCloud, tmp_path: Path) -> None:
    before = set_canary_environment(slow_cloud)
    proc = popen_gameday("run", "--deployment", str(slow_cloud.deployment_path), "-k", "region_failover", "--report-dir", str(tmp_path),
                         "--no-html")
    try:
        region = wait_until_flipped(slow_cloud)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        ensure_stopped(proc)
    left = environments(slow_cloud)
    assert left[region]["status"] == "404"  # the kill left the fault in place

    journal = tmp_path / "journal.jsonl"
    result = gameday("restore", "--journal", str(journal), "--deployment", str(slow_cloud.deployment_path),
                     report_dir=tmp_path)
    assert result.code == 0, result.stderr
    assert "restored" in result.stdout
    assert environments(slow_cloud) == before
    lam = boto3.client("lambda", region_name=region, endpoint_url=slow_cloud.aws_endpoint_url,
                       aws_access_key_id="gameday-local", aws_secret_access_key="gameday-local")
    arn = lam.get_function(FunctionName="gameday-Health")["Configuration"]["FunctionArn"]
    assert "gameday:fault" not in lam.list_tags(Resource=arn)["Tags"]     # the killed run's mark went too
    again = gameday("restore", "--journal", str(journal), "--deployment", str(slow_cloud.deployment_path),
                    report_dir=tmp_path)
    assert again.code == 0 and "nothing left injected" in again.stdout


class ConnectionCounter:
    """A TCP listener standing in for the AWS endpoint: counts who connects."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


GOOD = {
    "gameday_deployment": 1, "target": "local", "time_scale": 0.01, "domain": "api.gameday.test",
    "global_url": "http://api.gameday.test:8080", "dns_resolver": "127.0.0.1:53535", "hosted_zone_id": "Z1",
    "routing": "failover", "table": {"name": "T", "version": "2017.11.29"},
    "regions": [
        {"name": "eu-west-1", "api_url": "http://127.0.0.11:8080/prod", "failover_role": "PRIMARY",
         "functions": {"put": "p", "get": "g", "health": "h"}, "health_check_id": "hc1"},
        {"name": "us-east-1", "api_url": "http://127.0.0.12:8080/prod", "failover_role": "SECONDARY",
         "functions": {"put": "p", "get": "g", "health": "h"}, "health_check_id": "hc2"},
    ],
}


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.pop("domain"), "domain"),
    (lambda d: d.update(time_scale=3), "time_scale"),
    (lambda d: d.update(routing="random"), "routing"),
    (lambda d: d["regions"][1].pop("health_check_id"), "regions[1].health_check_id"),
    (lambda d: d["table"].update(version="2020"), "table.version"),
    (lambda d: d.update(dns_resolver="nowhere"), "dns_resolver"),
])
def test_bad_deployment_file_is_one_line_exit_2_no_aws_call(tmp_path: Path, mutate, field: str) -> None:
    counter = ConnectionCounter()
    try:
        data = yaml.safe_load(yaml.safe_dump(GOOD))
        data["aws_endpoint_url"] = counter.url
        mutate(data)
        path = tmp_path / "deployment.yaml"
        path.write_text(yaml.safe_dump(data))
        for args in (["run", "--deployment", str(path), "--no-html", "--report-dir", str(tmp_path)],
                     ["restore", "--deployment", str(path), "--journal", str(tmp_path / "j.jsonl")]):
            result = gameday(*args, report_dir=tmp_path)
            assert result.code == 2, (args, result.stdout, result.stderr)
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and field in lines[0], result.stderr
        time.sleep(0.1)
        assert counter.connections == 0
    finally:
        counter.close()


@pytest.mark.parametrize("args, named", [
    (["run", "-n", "-1"], "-n"),
    (["run", "--time-scale", "5"], "--time-scale"),
    (["run", "--deployment", "/nonexistent/deployment.yaml"], "deployment"),
    (["local", "up", "--regions", "eu-west-1"], "--regions"),
    (["local", "up", "--regions", "eu-west-1,mars-north-1"], "mars-north-1"),
    (["local", "up", "--routing", "random"], "--routing"),
    (["local", "up", "--table-version", "2020"], "--table-version"),
    (["local", "up", "--time-scale", "0"], "--time-scale"),
    (["run", "--fail-region"], "--fail-region"),
])
def test_bad_arguments_are_one_line_exit_2(tmp_path: Path, args: list[str], named: str) -> None:
    result = gameday(*args, report_dir=tmp_path, timeout=60)
    assert result.code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], result.stderr


def test_port_in_use_is_one_line_exit_2(tmp_path: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        port = holder.getsockname()[1]
        result = gameday("local", "up", "--aws-port", str(port), "--deployment-out", str(tmp_path / "d.yaml"),
                         report_dir=tmp_path, timeout=60)
    finally:
        holder.close()
    assert result.code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--aws-port" in lines[0], result.stderr
    assert not (tmp_path / "d.yaml").exists()


@pytest.mark.parametrize("breakage, named", [
    ("regional.yaml", "regional.yaml"),                      # not valid YAML
    ("unsupported", "AWS::EC2::Instance"),                   # a resource type the local cloud does not run
])
def test_bad_templates_for_local_up_are_one_line_exit_2(tmp_path: Path, breakage: str, named: str) -> None:
    import shutil as _shutil

    from gameday.provision import INFRA_DIR

    templates = tmp_path / "templates"
    _shutil.copytree(INFRA_DIR, templates, ignore=_shutil.ignore_patterns("__pycache__", "*.py", "functions"))
    if breakage == "regional.yaml":
        (templates / "regional.yaml").write_text("Resources: [unclosed\n")
    else:
        zone = (templates / "zone.yaml").read_text()
        assert "\nResources:\n" in zone
        extra = "\nResources:\n  Extra:\n    Type: AWS::EC2::Instance\n    Properties: {}\n"
        (templates / "zone.yaml").write_text(zone.replace("\nResources:\n", extra, 1))
    result = gameday("local", "up", "--port", "0", "--templates", str(templates), "--deployment-out",
                     str(tmp_path / "d.yaml"), report_dir=tmp_path, timeout=120)
    assert result.code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], result.stderr
    assert not (tmp_path / "d.yaml").exists()
