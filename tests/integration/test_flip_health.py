"""flip_health against the AWS API (moto server over HTTP): the environment is changed by
read-merge-write and put back exactly on every exit path."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from gameday.aws import AwsClients
from gameday.faults import FaultNotEffective, FlipHealth, RollbackFailed, RunRecord, Terminated
from gameday.faults.journal import FaultAlreadyInjected, Journal
from tests.support.lambda_updates import update_configuration
from tests.support.moto_rig import (  # noqa: F401  (_aws_credentials: an autouse fixture)
    REGIONS,
    FunctionUnderTest,
    _aws_credentials,
    lambda_client,
)

REGION = REGIONS[0]


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.jsonl")


def flip(fn: FunctionUnderTest, journal: Journal, **kwargs) -> FlipHealth:
    kwargs.setdefault("verify", False)
    return FlipHealth(fn.deployment, REGION, clients=AwsClients(fn.deployment), journal=journal, **kwargs)


def test_inject_changes_only_status_and_normal_exit_restores_exactly(health_function, journal):
    before = health_function.env()
    other_region_before = health_function.env(REGIONS[1])
    record = RunRecord()
    with flip(health_function, journal, run_record=record) as fault:
        during = health_function.env()
        assert during == {**before, "status": "404"}
        assert health_function.env(REGIONS[1]) == other_region_before, "only the failed region is touched"
        assert fault.original == {"present": True, "value": "200"}
        assert [e["state"] for e in journal.entries()] == ["injected"]
    assert health_function.env() == before
    entry = journal.entries()[0]
    assert entry["state"] == "restored" and entry["target"]["function"] == health_function.name
    assert entry["before"]["variables"] == {"status": {"present": True, "value": "200"}}
    assert set(entry["times"]) >= {"recorded", "injected", "restored"}
    # the journal never holds the rest of the environment
    assert before["SECRET_CANARY"] not in journal.path.read_text()
    phases = {p.name: p for p in record.phases}
    assert set(phases) == {"inject", "active", "restore"}
    assert all(p.end is not None and p.duration_s >= 0 and p.status == "succeeded" for p in phases.values())


def test_exception_in_the_body_restores_and_propagates(health_function, journal):
    before = health_function.env()
    record = RunRecord()
    with pytest.raises(AssertionError, match="scenario failed"):
        with flip(health_function, journal, run_record=record):
            raise AssertionError("scenario failed")
    assert health_function.env() == before
    assert journal.entries()[0]["state"] == "restored"
    assert record.get("active").status == "failed" and record.get("restore").status == "succeeded"


def test_keyboard_interrupt_in_the_body_restores_and_propagates(health_function, journal):
    before = health_function.env()
    with pytest.raises(KeyboardInterrupt):
        with flip(health_function, journal):
            raise KeyboardInterrupt
    assert health_function.env() == before
    assert journal.entries()[0]["state"] == "restored"


def test_sigterm_while_active_raises_terminated_restores_and_puts_the_handler_back(health_function, journal):
    before = health_function.env()
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated):
        with flip(health_function, journal):
            assert signal.getsignal(signal.SIGTERM) is not previous
            signal.raise_signal(signal.SIGTERM)
    assert health_function.env() == before
    assert signal.getsignal(signal.SIGTERM) is previous


@pytest.mark.parametrize("health_function", [{"tableName": "x", "SECRET_CANARY": "c"}], indirect=True)
def test_absent_key_is_deleted_on_restore(health_function, journal):
    before = health_function.env()
    assert "status" not in before
    with flip(health_function, journal) as fault:
        assert health_function.env() == {**before, "status": "404"}
        assert fault.original == {"present": False, "value": None}
    assert health_function.env() == before
    assert journal.entries()[0]["before"]["variables"]["status"] == {"present": False, "value": None}


@pytest.mark.parametrize("health_function", [{}], indirect=True)
def test_function_without_environment_gets_it_removed_again(health_function, journal):
    assert health_function.env() is None
    with flip(health_function, journal):
        assert health_function.env() == {"status": "404"}
    assert not health_function.env()  # moto reports no Environment at all for an empty map


def test_second_injection_on_the_same_function_is_refused(health_function, journal):
    before = health_function.env()
    with flip(health_function, journal):
        with pytest.raises(FaultAlreadyInjected, match="gameday restore"):
            with flip(health_function, journal):
                pass  # pragma: no cover
        assert health_function.env() == {**before, "status": "404"}, "the refused fault changed nothing"
    assert health_function.env() == before
    assert [e["state"] for e in journal.entries()] == ["restored"]


def test_a_variable_changed_by_someone_else_during_the_fault_is_kept(health_function, journal):
    before = health_function.env()
    lam = lambda_client(health_function.endpoint, REGION)
    with flip(health_function, journal) as fault:
        env = health_function.env()
        update_configuration(lam, FunctionName=health_function.name,
                             Environment={"Variables": {**env, "ADDED": "meanwhile"}})
    assert health_function.env() == {**before, "ADDED": "meanwhile"}
    assert "drift" in fault.record.get("restore").output["detail"]
    assert journal.entries()[0]["drift"] is True


def test_failed_restore_is_loud_and_stays_in_the_journal(health_function, journal):
    lam = lambda_client(health_function.endpoint, REGION)
    with pytest.raises(RollbackFailed, match="ROLLBACK FAILED.*gameday restore"):
        with flip(health_function, journal, update_budget_s=2.0):
            lam.delete_function(FunctionName=health_function.name)
    entry = journal.entries()[0]
    assert entry["state"] == "restore_failed" and "ResourceNotFound" in entry["error"]


def test_verify_sees_the_new_status_on_health(health_function, journal):
    before = health_function.env()
    with flip(health_function, journal, verify=True) as fault:
        assert fault.verified["answered"] == 404
        assert fault.record.get("verify").status == "succeeded"
    assert health_function.env() == before


def test_a_health_endpoint_that_ignores_the_environment_is_fault_not_effective(health_function, journal):
    before = health_function.env()
    health_function.site.ignore_env = True
    fault_record = RunRecord()
    body_ran = []
    with pytest.raises(FaultNotEffective, match="still answers 200") as info:
        with flip(health_function, journal, verify=True, verify_budget_s=1.0, run_record=fault_record):
            body_ran.append(True)  # pragma: no cover
    assert not body_ran
    assert info.value.category == "fault_not_effective"
    assert fault_record.get("verify").output["answered"] == 200
    assert health_function.env() == before, "restored although the fault never took effect"
    assert journal.entries()[0]["state"] == "restored"


def test_journal_lines_are_json_with_the_fixed_shape(health_function, journal):
    with flip(health_function, journal):
        pass
    lines = [json.loads(line) for line in journal.path.read_text().splitlines()]
    assert {tuple(sorted(line)) for line in lines} == {tuple(sorted(lines[-1]))}
    assert set(lines[-1]) >= {"id", "fault", "target", "before", "change", "state", "times"}
    arn = lines[-1]["target"]["function_arn"]  # keyed by ARN: a name is unique only in one account
    assert arn.startswith(f"arn:aws:lambda:{REGION}:") and arn.endswith(f":function:{health_function.name}")
    assert lines[-1]["target"] == {"region": REGION, "function": health_function.name,
                                   "endpoint": health_function.endpoint, "function_arn": arn,
                                   "account": arn.split(":")[4]}


def test_a_function_marked_by_another_run_is_not_touched_and_the_mark_goes_with_the_restore(
        health_function: FunctionUnderTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gameday.errors import ScenarioStopped
    from gameday.faults.marks import TAG

    lam = lambda_client(health_function.endpoint, REGION)
    arn = lam.get_function(FunctionName=health_function.name)["Configuration"]["FunctionArn"]
    monkeypatch.setenv("GAMEDAY_RUN_ID", "run-a")
    with flip(health_function, Journal(tmp_path / "a.jsonl")):
        assert lam.list_tags(Resource=arn)["Tags"].get(TAG) == "run-a"
        monkeypatch.setenv("GAMEDAY_RUN_ID", "run-b")     # a second run, with its own journal
        second = flip(health_function, Journal(tmp_path / "b.jsonl"))
        with pytest.raises(ScenarioStopped, match=r"carries gameday:fault=run-a: run run-a has a fault in place"):
            with second:
                pytest.fail("the second run must not get here")
        assert health_function.env()["status"] == "404"      # the first run's fault is still in place
        assert Journal(tmp_path / "b.jsonl").pending() == []  # the second run journalled nothing
        monkeypatch.setenv("GAMEDAY_RUN_ID", "run-a")
    assert TAG not in lam.list_tags(Resource=arn)["Tags"]
    assert health_function.env().get("status") == "200"
