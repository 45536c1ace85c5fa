"""Every fault, ended every way a run can end: normally, by an exception at each phase, by SIGINT or
SIGTERM while the fault is in place or while it is being restored, by SIGKILL (then `gameday
restore`), by a failed restore (then `gameday restore`), by a stop file and by the fault's time cap.
Each case ends with every resource the fault touched exactly as it was, and no mark left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from gameday.localcloud.process.launcher import LocalCloud
from tests.support.run_helpers import PROJECT_ROOT, gameday

REGION = "eu-west-1"
FAULTS = ("flip_health", "throttle_put", "replication_pause", "write_impairment", "region_outage")
EXIT_PATHS = (
    "normal", "raise_before_change", "raise_after_change", "raise_verify", "raise_active", "restore_fails",
    "sigint_active", "sigterm_active", "sigkill_active", "sigint_restoring", "sigterm_restoring",
    "sigkill_restoring", "stop_file", "time_cap",
)
NEEDS_RESTORE_COMMAND = {"restore_fails", "sigkill_active", "sigkill_restoring"}

CHILD = r'''
import sys, time
from gameday.aws import AwsClients
from gameday.deployment import load_deployment
from gameday.faults.concurrency import ThrottleFunction
from gameday.faults.flip_health import FlipHealth
from gameday.faults.replication import PauseReplication
from gameday.faults.write_impairment import WriteImpairment
from gameday.faults.region_outage import RegionOutage
from gameday.faults.journal import Journal

described, fault_name, region, journal_path, path = sys.argv[1:6]
deployment = load_deployment(described)
base = {"flip_health": FlipHealth, "throttle_put": ThrottleFunction, "replication_pause": PauseReplication,
        "write_impairment": WriteImpairment, "region_outage": RegionOutage}[fault_name]


class Boom(Exception):
    pass


class Fault(base):
    def apply(self):
        if path == "raise_before_change":
            raise Boom("before the change")
        super().apply()
        if path == "raise_after_change":
            raise Boom("after the change")

    def verify(self):
        if path == "raise_verify":
            raise Boom("while verifying")
        super().verify()

    def undo(self, entry):
        if path.endswith("_restoring"):
            print("RESTORING", flush=True)
            time.sleep(1.5)
        if path == "restore_fails":
            raise Boom("the restore is refused")
        return super().undo(entry)


with Fault(deployment, region, clients=AwsClients(deployment), journal=Journal(journal_path)):
    print("ACTIVE", flush=True)
    if path == "raise_active":
        raise Boom("while active")
    waited = 30 if path in ("sigint_active", "sigterm_active", "sigkill_active", "stop_file", "time_cap") else 0.2
    time.sleep(waited)
print("EXITED", flush=True)
'''


@pytest.fixture(scope="module")
def cloud(module_cloud: LocalCloud) -> LocalCloud:
    return module_cloud


def aws(cloud: LocalCloud, service: str) -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=cloud.aws_endpoint_url,
                        aws_access_key_id="gameday-local", aws_secret_access_key="gameday-local")


def state(cloud: LocalCloud) -> dict[str, Any]:
    """Everything any of the faults touches in the region: the replication switches, and for every
    function its whole environment, its reserved concurrency, its marks and its role's inline policies."""
    import requests

    lam = aws(cloud, "lambda")
    found: dict[str, Any] = {}
    for role in ("gameday-Health", "gameday-PutItem", "gameday-GetItem"):
        config = lam.get_function(FunctionName=role)
        found[role] = {"env": (config["Configuration"].get("Environment") or {}).get("Variables"),
                       "concurrency": config.get("Concurrency"),
                       "marks": {k: v for k, v in (config.get("Tags") or {}).items() if k.startswith("gameday:")}}
        role_name = config["Configuration"]["Role"].rsplit("/", 1)[-1]
        found[role + " role"] = sorted(aws(cloud, "iam").list_role_policies(RoleName=role_name)["PolicyNames"])
    replication = requests.get(f"{cloud.control_url}/replication/status", timeout=10).json()
    found["replication"] = {k: sorted(replication.get(k) or []) for k in ("paused", "dropped")}
    return found


def described(cloud: LocalCloud, tmp_path: Path, path: str) -> Path:
    data = yaml.safe_load(Path(cloud.deployment_path).read_text())
    if path == "stop_file":
        data["guardrails"] = {"stop_conditions": {"stop_file": str(tmp_path / "STOP")}}
    if path == "time_cap":
        data["guardrails"] = {"max_fault_s": 20}      # 0.2 s at scale 0.01
    out = tmp_path / "deployment.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def wait_for(proc: subprocess.Popen[str], word: str, budget_s: float = 60) -> None:
    deadline = time.monotonic() + budget_s
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if word in line:
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"the child ended before {word}: {proc.stderr.read() if proc.stderr else ''}")
    raise AssertionError(f"no {word} within {budget_s} s")


@pytest.mark.parametrize("path", EXIT_PATHS)
@pytest.mark.parametrize("fault", FAULTS)
def test_every_exit_path_leaves_every_touched_resource_exactly_as_before(cloud: LocalCloud, tmp_path: Path,
                                                                         fault: str, path: str) -> None:
    before = state(cloud)
    description = described(cloud, tmp_path, path)
    journal = tmp_path / "journal.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT / "src"), str(PROJECT_ROOT)]), "GAMEDAY_RUN_ID": f"matrix-{fault}-{path}"}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(description), fault, REGION, str(journal), path],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        if path.startswith(("sig", "stop_file")) and not path.endswith("_restoring"):
            wait_for(proc, "ACTIVE")
            if path == "stop_file":
                (tmp_path / "STOP").touch()
            else:
                os.killpg(proc.pid, {"sigint_active": signal.SIGINT, "sigterm_active": signal.SIGTERM,
                                     "sigkill_active": signal.SIGKILL}[path])
        elif path.endswith("_restoring"):
            wait_for(proc, "RESTORING")
            os.killpg(proc.pid, {"sigint_restoring": signal.SIGINT, "sigterm_restoring": signal.SIGTERM,
                                 "sigkill_restoring": signal.SIGKILL}[path])
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if path == "normal":
        assert proc.returncode == 0, err[-3000:]
    elif path in ("sigint_restoring", "sigterm_restoring"):
        assert "RollbackFailed" not in err, err[-3000:]   # held back until the restore was done
    else:
        assert proc.returncode != 0
    if path in NEEDS_RESTORE_COMMAND:
        assert state(cloud) != before, "the fault should still be in place for `gameday restore` to undo"
        restored = gameday("restore", "--journal", str(journal), "--deployment", str(description),
                           report_dir=tmp_path)
        assert restored.code == 0, restored.stdout[-2000:] + restored.stderr[-2000:]
    assert state(cloud) == before
