"""Bad input, as a new user types it, to the real `gameday` command: one line naming the field or
argument and what was expected, exit 2, no traceback, no AWS call and no local cloud left running.

"No AWS call" is observed, not assumed: every command runs with HTTP(S)_PROXY set to a loopback
listener that counts the connections it gets (botocore sends every AWS call through the proxy), and
the same listener is seen to count the calls of a command whose input is good.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.run_helpers import RunResult, ensure_stopped, gameday, popen_gameday

GOOD = {
    "gameday_deployment": 1, "target": "aws", "domain": "api.mycompany.com",
    "global_url": "https://api.mycompany.com", "hosted_zone_id": "Z0123456789ABC", "routing": "failover",
    "table": {"name": "MyGlobalTable", "version": "2019.11.21"},
    "lease": {"table": "gameday-leases", "region": "eu-west-1"},
    "regions": [
        {"name": "eu-west-1", "api_url": "https://abc123.execute-api.eu-west-1.amazonaws.com/prod",
         "health_check_id": "6c9a1b2c", "failover_role": "PRIMARY"},
        {"name": "us-east-1", "api_url": "https://def456.execute-api.us-east-1.amazonaws.com/prod",
         "health_check_id": "0d1e2f3a", "failover_role": "SECONDARY"},
    ],
}


class CountingProxy:
    """A loopback TCP listener standing in for an HTTP proxy: counts connections, closes each."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.1)   # so that the loop sees `_stop` soon after close()
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()


@pytest.fixture
def proxy() -> Iterator[CountingProxy]:
    counting = CountingProxy()
    try:
        yield counting
    finally:
        counting.close()


def aws_env(proxy: CountingProxy) -> dict[str, str]:
    """Credentials that resolve without a call, and every HTTP(S) request sent to `proxy`."""
    env = {"HTTPS_PROXY": proxy.url, "HTTP_PROXY": proxy.url, "https_proxy": proxy.url, "http_proxy": proxy.url,
           "NO_PROXY": "", "no_proxy": "", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret",
           "AWS_MAX_ATTEMPTS": "1", "AWS_EC2_METADATA_DISABLED": "true"}
    for name in os.environ:
        if name.startswith("AWS_ENDPOINT_URL") or name in ("AWS_PROFILE", "AWS_CONFIG_FILE"):
            env[name] = ""
    return env


def one_line_error(result: RunResult, *needles: str) -> str:
    """The command's single stderr line, asserted to hold every needle and no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.code == 2, (result.code, result.stderr[-2000:])
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def with_region(name: str) -> dict:
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    data["regions"][1]["name"] = name
    return data


# -- an unknown region in the description -------------------------------------------------------

@pytest.mark.parametrize("command", [
    ("run", "--no-html"), ("plan",), ("unlock", "--force"), ("teardown",), ("restore", "--journal", "none.jsonl"),
])
def test_an_unknown_region_is_refused_when_the_description_loads_with_no_aws_call(
        tmp_path: Path, proxy: CountingProxy, command: tuple[str, ...]) -> None:
    description = write(tmp_path / "deployment.yaml", with_region("xx-fake-9"))
    extra = ("--report-dir", str(tmp_path / "reports")) if command[0] == "run" else ()
    result = gameday(command[0], "--deployment", str(description), *command[1:], *extra, report_dir=tmp_path,
                     timeout=120, env=aws_env(proxy))
    one_line_error(result, "regions[1].name", "'xx-fake-9'", "region name")
    assert proxy.connections == 0


def test_the_same_commands_with_a_known_region_do_call_aws(tmp_path: Path, proxy: CountingProxy) -> None:
    """The sensor of the tests above: with good input, the calls reach the proxy (and fail there,
    in one line)."""
    description = write(tmp_path / "deployment.yaml", with_region("us-east-1"))
    result = gameday("teardown", "--deployment", str(description), report_dir=tmp_path, timeout=120,
                     env=aws_env(proxy))
    assert result.code == 1 and proxy.connections > 0, (result.code, result.stderr[-2000:])
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr


# -- gameday local up: checked before the cloud starts ------------------------------------------

def local_up(*args: str, timeout: float = 90) -> RunResult:
    """`gameday local up ARGS` in a process group of its own; after it exits, nothing of the group
    may remain (the cloud runs in that process and the threads and children it starts)."""
    proc = popen_gameday("local", "up", "--port", "0", "--address-prefix", "random", *args)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        ensure_stopped(proc)
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)   # no process of the group is left
    assert "cloud up" not in stdout, stdout
    return RunResult(proc.returncode, stdout, stderr, Path("."))


@pytest.mark.parametrize("where", ["a directory", "under a file", "an unwritable folder"])
def test_an_unwritable_deployment_out_is_refused_before_the_cloud_starts(tmp_path: Path, where: str) -> None:
    (tmp_path / "a-file").write_text("")
    path = {"a directory": tmp_path, "under a file": tmp_path / "a-file" / "deployment.yaml",
            "an unwritable folder": Path("/proc/gameday-no-such-folder/deployment.yaml")}[where]
    one_line_error(local_up("--deployment-out", str(path)), "--deployment-out", str(path))


@pytest.mark.parametrize("junk", ["junk", "10.0.0", "127.0", "127.0.300"])
def test_a_junk_address_prefix_names_the_option_and_the_form_it_takes(tmp_path: Path, junk: str) -> None:
    line = one_line_error(local_up("--address-prefix", junk, "--deployment-out", str(tmp_path / "d.yaml")),
                          "--address-prefix", "127.0.0", repr(junk))
    assert "--port" not in line


@pytest.mark.parametrize("args, needle", [
    (("--port", "99999"), "--port: expected a port 0-65535"),
    (("--regions", "eu-west-1,xx-fake-9"), "--regions: unknown region 'xx-fake-9'"),
    (("--time-scale", "nan"), "--time-scale: expected a number in (0, 1]"),
    (("--replication-delay", "-1"), "--replication-delay: expected a number of AWS seconds >= 0"),
    (("--routing", "weighted"), "--routing: expected one of failover, latency"),
    (("--ttl", "3600"), "--ttl: alias records answer with their target's TTL (60 s), not 3600; add --records cname"),
    (("--no-tls", "--records", "alias"), "--records: alias records point at a regional custom domain"),
    (("--consistency", "strong", "--table-version", "2017.11.29"),
     "--consistency: strong consistency needs a 2019.11.21 table, --table-version is 2017.11.29"),
    (("--consistency", "strong"), "--consistency: multi-Region strong consistency takes exactly 3 regions"),
    (("--consistency", "bogus"), "--consistency: expected one of eventual, strong, got 'bogus'"),
    (("--regions", "eu-west-1,eu-west-2", "--witness", "eu-west-3"),
     "--witness: a witness is only for --consistency strong"),
    (("--mrsc-commit", "-1"), "--mrsc-commit: expected a number of AWS seconds >= 0"),
])
def test_other_junk_local_up_arguments_are_one_line_naming_them(tmp_path: Path, args: tuple[str, ...],
                                                                needle: str) -> None:
    one_line_error(local_up(*args, "--deployment-out", str(tmp_path / "d.yaml")), needle)
    assert not (tmp_path / "d.yaml").exists()


def test_an_unwritable_work_dir_is_refused_before_the_cloud_starts(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    one_line_error(local_up("--work-dir", str(tmp_path / "a-file" / "tls"), "--deployment-out",
                            str(tmp_path / "d.yaml")), "--work-dir", "is a file, not a folder")


# -- gameday provision on AWS: refused before any call ------------------------------------------

@pytest.mark.parametrize("args, needles", [
    ((), ("--domain: required",)),
    (("--domain", "api.mycompany.com"), ("--hosted-zone-id: required for target aws", "delegated")),
    (("--domain", "api.example.com", "--hosted-zone-id", "Z0123456789ABC"), ("--domain", "example.com", "RFC 2606")),
    (("--domain", "www.example.org", "--hosted-zone-id", "Z0123456789ABC"), ("--domain", "example.org")),
    (("--domain", "api.gameday.test", "--hosted-zone-id", "Z0123456789ABC"), ("--domain", ".test", "reserved")),
    (("--domain", "shop.invalid", "--hosted-zone-id", "Z0123456789ABC"), ("--domain", ".invalid")),
    (("--domain", "api.localhost", "--hosted-zone-id", "Z0123456789ABC"), ("--domain", ".localhost")),
    (("--domain", "api.mycompany.com", "--hosted-zone-id", "junk"), ("--hosted-zone-id: expected a Route 53",)),
    (("--domain", "bad domain", "--hosted-zone-id", "Z0123456789ABC"), ("--domain: expected a DNS name",)),
    (("--domain", "api.mycompany.com", "--hosted-zone-id", "Z0123456789ABC", "--regions", "eu-west-1,xx-fake-9"),
     ("--regions: unknown region 'xx-fake-9'",)),
    (("--domain", "api.mycompany.com", "--hosted-zone-id", "Z0123456789ABC", "--table-version", "2020"),
     ("--table-version: expected one of",)),
    (("--domain", "api.mycompany.com", "--hosted-zone-id", "Z0123456789ABC", "--consistency", "strong"),
     ("--consistency: multi-Region strong consistency takes exactly 3 regions", "--regions eu-west-1,us-east-1")),
    (("--domain", "api.mycompany.com", "--hosted-zone-id", "Z0123456789ABC", "--consistency", "strong",
      "--regions", "eu-west-1,eu-west-2,eu-west-3", "--routing", "latency", "--table-version", "2017.11.29"),
     ("--consistency: strong consistency needs a 2019.11.21 table",)),
    (("--domain", "api.mycompany.com", "--hosted-zone-id", "Z0123456789ABC", "--witness", "eu-west-3"),
     ("--witness: a witness is only for --consistency strong",)),
])
def test_provision_on_aws_refuses_bad_input_before_any_call(tmp_path: Path, proxy: CountingProxy,
                                                            args: tuple[str, ...], needles: tuple[str, ...]) -> None:
    out = tmp_path / "out" / "deployment.yaml"
    result = gameday("provision", *args, "--deployment-out", str(out), report_dir=tmp_path, timeout=120,
                     env=aws_env(proxy))
    one_line_error(result, *needles)
    assert proxy.connections == 0 and not out.exists()


def test_provision_refuses_an_unwritable_deployment_out_and_an_endpoint_override_before_any_call(
        tmp_path: Path, proxy: CountingProxy) -> None:
    good = ("--domain", "api.mycompany.com", "--hosted-zone-id", "Z0123456789ABC")
    result = gameday("provision", *good, "--deployment-out", str(tmp_path), report_dir=tmp_path, timeout=120,
                     env=aws_env(proxy))
    one_line_error(result, "--deployment-out", "directory")
    env = {**aws_env(proxy), "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    result = gameday("provision", *good, "--deployment-out", str(tmp_path / "d.yaml"), report_dir=tmp_path,
                     timeout=120, env=env)
    one_line_error(result, "AWS_ENDPOINT_URL", "target aws")
    assert proxy.connections == 0
    result = gameday("provision", *good, "--deployment-out", str(tmp_path / "d.yaml"), report_dir=tmp_path,
                     timeout=120, env=aws_env(proxy))   # good input: the first call reaches the proxy
    assert result.code == 1 and proxy.connections > 0, (result.code, result.stderr[-2000:])
    assert result.stderr.startswith("gameday: sts GetCallerIdentity:") and "Traceback" not in result.stderr


# -- discover, report, run: the other commands' arguments -----------------------------------------

@pytest.mark.parametrize("args, needle", [
    (("--domain", "bad domain"), "--domain: expected a DNS name"),
    (("--domain", "api.mycompany.com", "--endpoint-url", "junk"), "--endpoint-url: expected an http(s) URL"),
    (("--domain", "api.mycompany.com", "--hosted-zone-id", "not a zone"), "--hosted-zone-id: expected"),
    (("--domain", "api.mycompany.com", "--out", "/proc/gameday-no-such-folder/d.yaml"), "--out: expected a file"),
])
def test_discover_refuses_junk_arguments_before_any_call(tmp_path: Path, proxy: CountingProxy,
                                                         args: tuple[str, ...], needle: str) -> None:
    one_line_error(gameday("discover", *args, report_dir=tmp_path, timeout=120, env=aws_env(proxy)), needle)
    assert proxy.connections == 0


def test_report_refuses_a_file_and_a_folder_without_runs(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    one_line_error(gameday("report", "--report-dir", str(tmp_path / "a-file"), report_dir=tmp_path),
                   "--report-dir", "(a file)")
    (tmp_path / "empty").mkdir()
    one_line_error(gameday("report", "--report-dir", str(tmp_path / "empty"), report_dir=tmp_path),
                   "--report-dir", "no run with allure-results/")


@pytest.mark.parametrize("args, needle", [
    (("--report-dir", "/proc/gameday-no-such-folder"), "--report-dir: expected a folder that can be written"),
    (("--junitxml", "/proc/gameday-no-such-folder/junit.xml"), "--junitxml: expected a file that can be written"),
])
def test_run_refuses_unwritable_outputs_before_any_game_day(tmp_path: Path, args: tuple[str, ...],
                                                           needle: str) -> None:
    proc = popen_gameday("run", "--no-html", *args)
    try:
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        ensure_stopped(proc)
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)   # no pytest, no local cloud left
    one_line_error(RunResult(proc.returncode, stdout, stderr, tmp_path), needle)
    assert "pytest" not in stdout, stdout


def test_policy_refuses_an_unwritable_out_before_any_call(tmp_path: Path, proxy: CountingProxy) -> None:
    description = write(tmp_path / "deployment.yaml", GOOD)
    for out, needle in ((tmp_path, "--out: expected a file path, got a directory"),
                        (tmp_path / "deployment.yaml" / "policy.json", "is a file, not a folder")):
        result = gameday("policy", "--deployment", str(description), "--out", str(out), report_dir=tmp_path,
                         timeout=120, env=aws_env(proxy))
        one_line_error(result, needle)
    assert proxy.connections == 0


@pytest.mark.parametrize("args, needle", [
    (("--regions", "eu-west-1"), "--regions: expected at least 2 comma-separated regions"),
    (("--regions", "eu-west-1,eu-west-1"), "--regions: duplicate region"),
    (("--regions", "eu-west-1,xx-fake-9"), "--regions: unknown region 'xx-fake-9'"),
    (("--regions", "eu-west-1,us-east-1,ap-southeast-1", "--routing", "failover"),
     "--routing: failover routing pairs exactly 2 regions, --regions names 3; use latency"),
    (("--routing", "weighted"), "--routing: expected one of failover, latency, failover_pairs, got 'weighted'"),
    (("--consistency", "strong"), "--consistency: multi-Region strong consistency takes exactly 3 regions (3 "
                                  "replicas, or 2 and a witness), got 2 (--regions eu-west-1,us-east-1)"),
    (("--consistency", "strong", "--regions", "eu-west-1,eu-west-2", "--witness", "us-east-1"),
     "--consistency: all 3 regions must come from one region set"),
    (("--witness", "eu-west-3"), "--witness: a witness is only for --consistency strong"),
    (("--consistency", "bogus"), "--consistency: expected one of eventual, strong, got 'bogus'"),
    (("--consistency", "strong", "--regions", "eu-west-1,eu-west-2", "--witness", "eu-west-2"),
     "--witness: eu-west-2 is one of --regions"),
])
def test_run_refuses_junk_embedded_cloud_regions_before_any_game_day(tmp_path: Path, args: tuple[str, ...],
                                                                     needle: str) -> None:
    one_line_error(gameday("run", "--no-html", "--report-dir", str(tmp_path), *args, report_dir=tmp_path), needle)
    assert not any(tmp_path.iterdir())   # no run folder: nothing ran


@pytest.mark.parametrize("option, value", [("--regions", "eu-west-1,us-east-1"), ("--consistency", "strong"),
                                           ("--witness", "eu-west-3")])
def test_run_refuses_embedded_cloud_regions_beside_a_deployment(tmp_path: Path, option: str, value: str) -> None:
    described = write(tmp_path / "deployment.yaml", GOOD)
    one_line_error(gameday("run", "--deployment", str(described), option, value,
                           "--report-dir", str(tmp_path / "reports"), report_dir=tmp_path),
                   f"{option}: only for the embedded local cloud")
