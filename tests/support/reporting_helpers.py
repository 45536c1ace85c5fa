"""Helpers for the reporting tests: the sample game-day module run under pytest-xdist with allure-pytest, a tiny
W3C WebDriver client for headless Chromium (through chromedriver, no selenium), and report readers."""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tenacity

REPO = Path(__file__).resolve().parents[2]
CANARY = "canary-7f3b1c9e-do-not-publish"
PLAIN_CANARY = "canary-plain-setting-4d2a"  # under an innocent-looking key: still a Lambda environment value
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKE"
AWS_KEY_ID = "AKIAZ7QEXAMPLE4CANRY"
TITLES = ("Failover of eu-west-1 under load", "Failover of us-east-1 under load", "Harness blows up")

SAMPLE_CONFTEST = textwrap.dedent('''
    from gameday.report import allure as reporting

    def pytest_sessionfinish(session):
        deployment = {"target": "local", "routing": "failover", "time_scale": 0.01,
                      "table": {"name": "MyGlobalTable", "version": "2017.11.29"},
                      "regions": [{"name": "eu-west-1"}, {"name": "us-east-1"}]}
        reporting.write_run_metadata(session.config, reporting.environment_properties(deployment))
''')

SAMPLE_TESTS = textwrap.dedent('''
    import time
    import pytest
    from gameday.report import allure as reporting, charts

    CANARY = {canary!r}
    PLAIN_CANARY = {plain!r}
    AWS_SECRET = {aws_secret!r}
    AWS_KEY_ID = {aws_key_id!r}

    def lambda_configuration():
        return {{"FunctionName": "gameday-Health",
                "Environment": {{"Variables": {{"status": "404", "API_SECRET": CANARY, "tableName": CANARY + "-t",
                                              "FEATURE_MODE": PLAIN_CANARY,
                                              "AWS_SECRET_ACCESS_KEY": AWS_SECRET}}}},
                "LastUpdateStatus": "Successful"}}

    def events(t0, failed):
        out = []
        for i in range(600):
            t = t0 + i * 0.01
            region = "eu-west-1" if i % 2 else "us-east-1"
            ok = not (region == failed and 2.0 < t - t0 < 3.5)
            out.append({{"t_start": t, "t_end": t + 0.005, "op": "put", "ok": ok, "status": 200 if ok else 503,
                        "latency_s": 0.005, "region": region, "item_id": i, "error": None}})
        return out

    @pytest.mark.parametrize("failed,survivor", [("eu-west-1", "us-east-1"), ("us-east-1", "eu-west-1")])
    def test_failover_under_load(failed, survivor):
        record = reporting.RunRecord(scenario=f"failover[{{failed}}]")
        with reporting.recording(record):
            reporting.label_scenario("Game day", "Region failover", "Failover under load", "critical",
                                     failed, survivor, title=f"Failover of {{failed}} under load")
            t0 = time.time()
            marks = {{"fault": t0 + 2.0, "detected": t0 + 3.0, "dns_shift": t0 + 3.5, "restore": t0 + 4.5,
                     "recovered": t0 + 5.5}}
            with reporting.phase("steady state"):
                reporting.attach_json("health observations", [{{"region": failed, "failing": 0, "total": 16}}])
            with reporting.phase("inject"):
                reporting.attach_json("Lambda configuration before flip", lambda_configuration())
                print("debug: using credentials", AWS_KEY_ID, AWS_SECRET)
            with reporting.phase("detect"):
                pass
            with reporting.phase("verify"):
                png = charts.timeline_chart(events(t0, failed), marks, time_scale=0.01)
                reporting.attach_png("timeline", png)
                reporting.attach_metrics("metrics", {{"acked_writes": 5123, "rpo_lost_writes": 0,
                                                     "client_outage_s": 1.25, "detection_s": 0.31}})
                if failed == "us-east-1":
                    reporting.set_failure_category("detection_timeout")
                    reporting.attach_json("evidence", {{"health_observations": ["Success: HTTP Status Code 200"],
                                                       "items_by_region": {{"eu-west-1": None}}}})
                    assert False, reporting.categorised(
                        "detection_timeout", f"{{failed}} still healthy after 0.45 s (key {{AWS_SECRET}})")
        assert [p["name"] for p in record.phases] == ["steady state", "inject", "detect", "verify"]

    def test_harness_error():
        reporting.label_scenario("Game day", "Region failover", "Harness", "normal", title="Harness blows up")
        with reporting.phase("provision"):
            raise RuntimeError("provisioning exploded")
''').format(canary=CANARY, plain=PLAIN_CANARY, aws_secret=AWS_SECRET, aws_key_id=AWS_KEY_ID)


def run_sample(workdir: Path, alluredir: Path) -> subprocess.CompletedProcess[str]:
    """Run the sample game-day module with allure-pytest under pytest-xdist (2 workers) into `alluredir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "conftest.py").write_text(SAMPLE_CONFTEST)
    (workdir / "test_sample_gameday.py").write_text(SAMPLE_TESTS)
    (workdir / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "pytest", "-c", str(workdir / "pytest.ini"), "--rootdir",
                           str(workdir), "-n", "2", "--alluredir", str(alluredir), str(workdir)],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=180, check=False)


def as_new_run(results: Path, target: Path, shift_s: float = 3600) -> Path:
    """A copy of allure `results` as if from a later run of the same tests (new result uuids, later times)."""
    import uuid

    target.mkdir(parents=True)
    for path in results.iterdir():
        if path.name.endswith("-result.json"):
            data = json.loads(path.read_text())
            data["uuid"] = str(uuid.uuid4())
            data["start"] += int(shift_s * 1000)
            data["stop"] += int(shift_s * 1000)
            (target / f"{data['uuid']}-result.json").write_text(json.dumps(data))
        else:
            shutil.copy2(path, target / path.name)
    return target


def history_entries(report_dir: Path) -> list[dict]:
    path = report_dir / "history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def report_test_ids(report_dir: Path) -> dict[str, str]:
    """Report test-result id by test name, from the newest history entry."""
    latest = history_entries(report_dir)[-1]
    return {tr["name"]: tr["id"] for tr in latest["testResults"].values()}




class Browser:
    """Headless Chromium driven through chromedriver's W3C WebDriver HTTP API (plain requests, no selenium):
    open a page, run a script, click, screenshot. Started and stopped by the `browser` fixture."""

    FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1000"]

    def __init__(self, profile: Path) -> None:
        import requests

        self._http = requests.Session()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        driver = shutil.which("chromedriver")
        if driver is None:
            pytest.fail("chromedriver is not installed: apt-get install -y chromium chromium-driver")
        self._proc = subprocess.Popen([driver, f"--port={port}", "--allowed-ips=127.0.0.1"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._base = f"http://127.0.0.1:{port}"
        self._session = None
        try:
            self._wait(lambda: self._http.get(self._base + "/status", timeout=2).json()["value"]["ready"], 20)
            caps = {"browserName": "chrome", "goog:chromeOptions": {
                "binary": chromium(), "args": [*self.FLAGS, f"--user-data-dir={profile}"]}}
            reply = self._http.post(self._base + "/session", json={"capabilities": {"alwaysMatch": caps}},
                                    timeout=60).json()
            self._session = f"{self._base}/session/{reply['value']['sessionId']}"
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _wait(condition, budget_s: float):
        """Poll `condition` until it returns a truthy value (returned) or the budget runs out (last result)."""
        retrying = tenacity.Retrying(stop=tenacity.stop_after_delay(budget_s), wait=tenacity.wait_fixed(0.2),
                                     retry=tenacity.retry_if_result(lambda v: not v) |
                                     tenacity.retry_if_exception_type(Exception),
                                     retry_error_callback=lambda state: state.outcome.result()
                                     if not state.outcome.failed else None)
        return retrying(condition)

    def _post(self, path: str, body: dict) -> object:
        reply = self._http.post(self._session + path, json=body, timeout=60).json()
        return reply["value"]

    def open(self, html: Path, fragment: str = "") -> None:
        self._post("/url", {"url": f"{html.as_uri()}#{fragment}"})

    def js(self, script: str, *args: object) -> object:
        return self._post("/execute/sync", {"script": script, "args": list(args)})

    def js_async(self, script: str, *args: object) -> object:
        return self._post("/execute/async", {"script": script, "args": list(args)})

    def text(self) -> str:
        return str(self.js("return document.body ? document.body.innerText : ''"))

    def wait_text(self, needle: str, budget_s: float = 20) -> str:
        """The page text once it contains `needle` (or the last text seen when the budget runs out)."""
        seen = {"text": ""}

        def has() -> bool:
            seen["text"] = self.text()
            return needle in seen["text"]

        self._wait(has, budget_s)
        return seen["text"]

    def screenshot(self, path: Path) -> None:
        reply = self._http.get(self._session + "/screenshot", timeout=60).json()
        path.write_bytes(base64.b64decode(reply["value"]))

    def close(self) -> None:
        if self._session is not None:
            try:
                self._http.delete(self._session, timeout=30)
            except Exception:  # noqa: BLE001 - the driver is killed next anyway
                pass
            self._session = None
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._http.close()


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("headless Chromium is not installed: apt-get install -y chromium chromium-driver")
    return exe


_B64 = re.compile(rb"[A-Za-z0-9+/]{24,}={0,2}")


def decoded_views(data: bytes) -> list[bytes]:
    """`data` plus every base64 run in it decoded (the single-file report embeds its data as base64)."""
    views = [data]
    for m in _B64.finditer(data):
        chunk = m.group(0)
        try:
            views.append(base64.b64decode(chunk + b"=" * (-len(chunk) % 4), validate=False))
        except (binascii.Error, ValueError):
            continue
    return views
