"""The journal survives a killed run: SIGKILL mid-fault leaves an 'injected' entry that
restore_pending repairs exactly; SIGTERM is undone by the run itself; a torn line, an
injection that never happened, another endpoint's entries and a failing restore are
all handled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gameday.aws import AwsClients
from gameday.faults import FlipHealth
from gameday.faults.journal import FaultAlreadyInjected, Journal, env_fingerprint, restore_pending
from tests.support.lambda_updates import update_configuration
from tests.support.moto_rig import (  # noqa: F401  (_aws_credentials: an autouse fixture)
    REGIONS,
    FunctionUnderTest,
    _aws_credentials,
    lambda_client,
)

REGION = REGIONS[0]
PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHILD = """
import sys, threading
from tests.support.moto_rig import make_deployment
from gameday.aws import AwsClients
from gameday.faults import FlipHealth
from gameday.faults.journal import Journal
endpoint, site, function, journal = sys.argv[1:5]
dep = make_deployment(endpoint, site, function)
with FlipHealth(dep, {region!r}, clients=AwsClients(dep), journal=Journal(journal), verify=False):
    print("INJECTED", flush=True)
    threading.Event().wait(60)   # a long scenario, killed from outside
print("EXITED NORMALLY", flush=True)
"""


def start_child(fn: FunctionUnderTest, journal_path: Path) -> subprocess.Popen[str]:
    code = CHILD.format(region=REGION)
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
    child = subprocess.Popen([sys.executable, "-c", code, fn.endpoint, fn.site.url, fn.name, str(journal_path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = child.stdout.readline()  # blocks until injected (or the child died)
    if line.strip() != "INJECTED":
        child.kill()
        out, err = child.communicate(timeout=10)
        pytest.fail(f"child did not inject: {line!r} {out!r} {err[-2000:]!r}")
    return child


def test_sigkill_mid_fault_is_repaired_by_restore_pending(health_function, tmp_path):
    journal_path = tmp_path / "journal.jsonl"
    before = health_function.env()
    child = start_child(health_function, journal_path)
    try:
        assert health_function.env() == {**before, "status": "404"}
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL
    journal = Journal(journal_path)
    assert [e["state"] for e in journal.entries()] == ["injected"]
    assert health_function.env() == {**before, "status": "404"}, "nobody restored it"

    clients = AwsClients(health_function.deployment)
    # a new run refuses to stack another fault on the same function: the killed run's mark (or, with
    # the same journal, its pending entry) says so, and how to repair it
    from gameday.errors import ScenarioStopped

    with pytest.raises((FaultAlreadyInjected, ScenarioStopped), match="gameday restore"):
        with FlipHealth(health_function.deployment, REGION, clients=clients, journal=journal, verify=False):
            pass  # pragma: no cover

    outcomes = restore_pending(journal_path, clients)
    assert [o.ok for o in outcomes] == [True]
    assert "status='200' put back" in str(outcomes[0])
    assert health_function.env() == before
    assert [e["state"] for e in journal.entries()] == ["restored"]
    assert restore_pending(journal_path, clients) == [], "nothing left to do"

    with FlipHealth(health_function.deployment, REGION, clients=clients, journal=journal, verify=False):
        assert health_function.env()["status"] == "404"
    assert health_function.env() == before


def test_sigterm_mid_fault_is_restored_by_the_run_itself(health_function, tmp_path):
    journal_path = tmp_path / "journal.jsonl"
    before = health_function.env()
    child = start_child(health_function, journal_path)
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=30)
    assert "EXITED NORMALLY" not in out
    assert "Terminated" in err
    assert health_function.env() == before
    assert [e["state"] for e in Journal(journal_path).entries()] == ["restored"]


def test_restore_pending_accepts_a_deployment(health_function, tmp_path):
    journal_path = tmp_path / "journal.jsonl"
    before = health_function.env()
    child = start_child(health_function, journal_path)
    child.kill()
    child.communicate(timeout=10)
    outcomes = restore_pending(journal_path, health_function.deployment)
    assert [o.ok for o in outcomes] == [True]
    assert health_function.env() == before


def _journal_entry(journal: Journal, fn: FunctionUnderTest, env: dict, *, endpoint: str | None = None) -> dict:
    return journal.begin(
        "flip_health",
        {"region": REGION, "function": fn.name, "endpoint": fn.endpoint if endpoint is None else endpoint},
        {"variables": {"status": {"present": "status" in env, "value": env.get("status")}},
         "fingerprint": env_fingerprint(env)},
        {"status": "404"})


def test_entry_whose_injection_never_happened_is_closed_without_a_write(health_function, tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    before = health_function.env()
    _journal_entry(journal, health_function, before)  # killed between the journal line and the update
    outcomes = restore_pending(journal.path, AwsClients(health_function.deployment))
    assert [o.ok for o in outcomes] == [True] and "already as before" in outcomes[0].detail
    assert health_function.env() == before


@pytest.mark.parametrize("health_function", [{"tableName": "x"}], indirect=True)
def test_absent_key_left_injected_is_deleted_by_restore_pending(health_function, tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    before = health_function.env()
    _journal_entry(journal, health_function, before)
    update_configuration(lambda_client(health_function.endpoint, REGION),
        FunctionName=health_function.name, Environment={"Variables": {**before, "status": "404"}})
    outcomes = restore_pending(journal.path, AwsClients(health_function.deployment))
    assert "status deleted (absent before)" in outcomes[0].detail
    assert health_function.env() == before


def test_entries_of_another_endpoint_are_left_alone(health_function, tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    _journal_entry(journal, health_function, health_function.env(), endpoint="http://127.0.0.1:1")
    assert restore_pending(journal.path, AwsClients(health_function.deployment)) == []
    assert [e["state"] for e in journal.entries()] == ["injected"]


def test_failing_restore_is_reported_and_kept(health_function, tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    _journal_entry(journal, health_function, health_function.env())
    for region in REGIONS:
        lambda_client(health_function.endpoint, region).delete_function(FunctionName=health_function.name)
    outcomes = restore_pending(journal.path, AwsClients(health_function.deployment))
    assert [o.ok for o in outcomes] == [False]
    assert str(outcomes[0]).startswith("RESTORE FAILED")
    assert [e["state"] for e in journal.entries()] == ["restore_failed"]
    assert len(journal.pending()) == 1, "kept for the next `gameday restore`"


def test_torn_last_line_is_ignored_and_the_next_append_still_parses(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    entry = journal.begin("flip_health", {"region": REGION, "function": "f", "endpoint": None},
                          {"variables": {"status": {"present": True, "value": "200"}}, "fingerprint": None},
                          {"status": "404"})
    with open(journal.path, "a") as f:
        f.write('{"id": "' + entry["id"] + '", "state": "rest')  # killed mid-write
    assert [e["state"] for e in journal.entries()] == ["injected"]
    journal.mark_restored(entry)
    assert [e["state"] for e in journal.entries()] == ["restored"]
    for line in journal.path.read_text().splitlines()[-1:]:
        json.loads(line)


def test_missing_journal_means_nothing_pending(tmp_path, health_function):
    assert Journal(tmp_path / "none.jsonl").entries() == []
    assert restore_pending(tmp_path / "none.jsonl", AwsClients(health_function.deployment)) == []
