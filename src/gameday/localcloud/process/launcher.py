"""LocalCloud: an independent embedded cloud in a child process, for tests and `gameday run`.

Why a child process: moto's backends are process-wide, so two clouds in one process
would share state; and the cloud's threads (moto, checkers, data plane) would compete
with the harness for one GIL and distort what the harness measures.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import requests
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from gameday.errors import GamedayError
from gameday.localcloud.process.serve import READY_PREFIX

START_TIMEOUT_S = 60.0


class LocalCloudError(GamedayError):
    pass


class LocalCloud:
    """Context manager: `with LocalCloud(regions=[...]) as cloud: cloud.deployment_path`."""

    def __init__(self, *, regions: list[str] | None = None, time_scale: float = 0.01,
                 table_version: str | None = None, routing: str = "failover", pairs: str | None = None,
                 consistency: str = "EVENTUAL", witness: str | None = None,
                 templates: str | None = None, deployment_out: str | Path | None = None,
                 extra_args: list[str] | None = None, log_path: str | Path | None = None,
                 tls: bool = True) -> None:
        """`tls=True` (the default): the shape real deployments have (serve.py --tls): HTTPS data
        plane with the cloud's CA (description `ca_bundle`, kept in this cloud's temporary folder),
        regional custom domains, alias A records, HTTPS health checks, a client network per region.
        `tls=False`: the old HTTP shape (CNAME records to the execute-api hosts), for tests of it.
        `table_version` None: serve.py's default (2017.11.29; 2019.11.21 with consistency STRONG).
        `consistency`/`witness`: the global table's MultiRegionConsistency and MRSC witness region."""
        self._workdir = tempfile.TemporaryDirectory(prefix="gameday-local-")
        self.deployment_path = Path(deployment_out) if deployment_out else Path(self._workdir.name) / "deployment.yaml"
        self.log_path = Path(log_path) if log_path else Path(self._workdir.name) / "cloud.log"
        self._argv = [
            sys.executable, "-m", "gameday.localcloud.process.serve", "--ready-line",
            "--regions", ",".join(regions or ["eu-west-1", "us-east-1"]),
            "--time-scale", str(time_scale), "--routing", routing, "--consistency", consistency,
            "--port", "0", "--aws-port", "0", "--dns-port", "0", "--address-prefix", "random",
            "--deployment-out", str(self.deployment_path),
        ]
        if table_version is not None:
            self._argv += ["--table-version", table_version]
        if witness is not None:
            self._argv += ["--witness", witness]
        if pairs is not None:
            self._argv += ["--pairs", pairs]
        if templates:
            self._argv += ["--templates", str(templates)]
        if tls:
            self._argv += ["--tls", "--work-dir", self._workdir.name]
        else:
            self._argv += ["--no-tls"]
        self._argv += list(extra_args or [])
        self._proc: subprocess.Popen[str] | None = None
        self.description: dict[str, Any] = {}

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> LocalCloud:
        log = open(self.log_path, "a")
        project_root = str(Path(__file__).resolve().parents[3])  # the folder that holds the gameday package
        env = dict(os.environ)
        env["PYTHONPATH"] = project_root + os.pathsep + env.get("PYTHONPATH", "")
        # Its own session: a terminal's Ctrl-C reaches us, and we stop it in order. It watches us
        # (--parent-pid), so that it dies with us when we die without stopping it (process/lifeline.py).
        argv = [*self._argv, "--parent-pid", str(os.getpid())]
        self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, text=True,
                                      env=env, start_new_session=True)
        log.close()
        line = self._read_ready_line()
        self.description = json.loads(line[len(READY_PREFIX):])
        return self

    def _read_ready_line(self) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        found: list[str] = []

        def reader() -> None:
            for line in stdout:
                if line.startswith(READY_PREFIX):
                    found.append(line)
                    return

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        thread.join(START_TIMEOUT_S)
        if not found:
            code = self._proc.poll()
            self.stop()
            tail = self.log_tail()
            raise LocalCloudError(f"local cloud did not start (exit {code}): {tail}")
        return found[0]

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text().strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()

    def close(self) -> None:
        self.stop()
        self._workdir.cleanup()

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- conveniences for tests --------------------------------------------------
    @property
    def pid(self) -> int | None:
        """The cloud process's pid while it runs (None before start() and after stop())."""
        return self._proc.pid if self._proc is not None else None

    @property
    def aws_endpoint_url(self) -> str:
        return self.description["aws_endpoint_url"]

    @property
    def control_url(self) -> str:
        return self.description["control_url"]

    def events(self, since: int = 0, kind: str | None = None) -> list[dict[str, Any]]:
        """The ground truth recorded by the cloud (see gameday/localcloud/truth.py)."""
        params: dict[str, Any] = {"since": since}
        if kind:
            params["kind"] = kind
        return self._get("/events", params)["events"]

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = requests.post(self.control_url + path, json=body or {}, timeout=10)
        response.raise_for_status()
        return response.json()

    @retry(stop=stop_after_delay(5), wait=wait_fixed(0.1), retry=retry_if_exception_type(requests.ConnectionError), reraise=True)
    def _get(self, path: str, params: dict[str, Any]) -> Any:
        response = requests.get(self.control_url + path, params=params, timeout=10)
        response.raise_for_status()
        return response.json()
