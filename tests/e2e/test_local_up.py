"""`gameday local up` as a person runs it: foreground, endpoints printed, description written,
Ctrl-C stops it cleanly; and the same failover flow from the `aws` CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import dns.message
import dns.query
import pytest
import yaml
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from tests.support.run_helpers import PROJECT_ROOT


@pytest.fixture
def local_up(tmp_path: Path):
    out = tmp_path / "deployment.yaml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gameday.cli.main", "local", "up", "--port", "0", "--address-prefix", "random",
         "--deployment-out", str(out)],
        cwd=PROJECT_ROOT, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        Retrying(stop=stop_after_delay(90), wait=wait_fixed(0.1), retry=retry_if_result(lambda ok: not ok),
                 reraise=True)(lambda: out.exists() or proc.poll() is not None)
        assert proc.poll() is None, proc.stderr.read()
        yield proc, out
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_local_up_prints_endpoints_writes_description_and_stops_on_ctrl_c(local_up) -> None:
    proc, out = local_up
    described = yaml.safe_load(out.read_text())
    for key in ("aws_endpoint_url", "time_scale", "domain", "global_url", "dns_resolver", "hosted_zone_id",
                "routing", "table", "regions", "ca_bundle"):
        assert key in described, key
    # the shape real deployments have, by default: HTTPS verified against the cloud's CA, alias records
    assert described["global_url"].startswith("https://") and Path(described["ca_bundle"]).is_file()
    assert all(r["regional_domain_name"] and r["client_network"] for r in described["regions"])
    assert described["table"] == {"name": "MyGlobalTable", "version": "2017.11.29",
                                  "region_attribute": "aws:rep:updateregion"}
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert described["aws_endpoint_url"] in stdout and described["global_url"] in stdout
    assert "stopping" in stdout


def aws_cli(endpoint: str, *args: str) -> dict:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "gameday-local", "AWS_SECRET_ACCESS_KEY": "gameday-local",
           "AWS_DEFAULT_REGION": "us-east-1"}
    proc = subprocess.run(["aws", "--endpoint-url", endpoint, "--output", "json", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout) if proc.stdout.strip() else {}


def dns_answer(resolver: str, name: str) -> list[str]:
    host, port = resolver.split(":")
    response = dns.query.udp(dns.message.make_query(name, "A"), host, port=int(port), timeout=2)
    return [item.to_text() for rrset in response.answer for item in rrset]


@pytest.mark.skipif(shutil.which("aws") is None, reason="the aws CLI is installed by setup.sh (awscli)")
def test_failover_flow_from_the_aws_cli(local_up) -> None:
    _, out = local_up
    d = yaml.safe_load(out.read_text())
    endpoint, primary, secondary = d["aws_endpoint_url"], d["regions"][0], d["regions"][1]
    scale = d["time_scale"]
    budget = 10 * 3 * scale * 3 + 5  # interval x threshold, scaled, with margin

    def failing_fraction() -> float:
        obs = aws_cli(endpoint, "route53", "get-health-check-status", "--health-check-id",
                      primary["health_check_id"])["HealthCheckObservations"]
        return sum(o["StatusReport"]["Status"].startswith("Failure") for o in obs) / len(obs)

    def answers() -> list[str]:
        return dns_answer(d["dns_resolver"], d["domain"])

    # alias A records: the addresses of the region's regional domain name, no CNAME naming it
    assert answers() == [primary["address"]]
    aws_cli(endpoint, "lambda", "update-function-configuration", "--region", primary["name"], "--function-name",
            primary["functions"]["health"], "--environment", "Variables={status=404,tableName=MyGlobalTable}")
    Retrying(stop=stop_after_delay(budget), wait=wait_fixed(0.05), retry=retry_if_result(lambda f: f <= 0.82),
             reraise=True)(failing_fraction)
    test = aws_cli(endpoint, "route53", "test-dns-answer", "--hosted-zone-id", d["hosted_zone_id"],
                   "--record-name", d["domain"], "--record-type", "A")
    assert test["RecordData"] == [secondary["address"]]
    Retrying(stop=stop_after_delay(budget), wait=wait_fixed(0.05),
             retry=retry_if_result(lambda a: secondary["address"] not in a), reraise=True)(answers)

    aws_cli(endpoint, "lambda", "update-function-configuration", "--region", primary["name"], "--function-name",
            primary["functions"]["health"], "--environment", "Variables={status=200,tableName=MyGlobalTable}")
    Retrying(stop=stop_after_delay(budget), wait=wait_fixed(0.05), retry=retry_if_result(lambda f: f > 0.18),
             reraise=True)(failing_fraction)
    Retrying(stop=stop_after_delay(budget), wait=wait_fixed(0.05),
             retry=retry_if_result(lambda a: primary["address"] not in a), reraise=True)(answers)
