"""The ground-truth log: what is recorded is what readers get back, and it stays bounded."""

from __future__ import annotations

from gameday.localcloud.truth import GroundTruth


def test_events_read_back_as_recorded_with_structured_values_detached() -> None:
    truth = GroundTruth()
    key = {"id": {"N": "7"}}
    first = truth.record("replication_applied", table="T", key=key, lag_s=0.004, op="put")
    truth.record("fault", region="eu-west-1", keys_changed=["status"], on=True)
    key["id"]["N"] = "changed later"  # the log keeps what was true when it was recorded
    events = truth.events()
    assert [e["seq"] for e in events] == [1, 2]
    assert events[0] == {**first, "key": {"id": {"N": "7"}}}
    assert events[1]["keys_changed"] == ["status"] and events[1]["on"] is True
    assert [e["kind"] for e in truth.events(since=1)] == ["fault"]
    assert truth.events(kind="fault")[0]["region"] == "eu-west-1"


def test_the_log_keeps_only_the_newest_events() -> None:
    truth = GroundTruth(max_events=3)
    for n in range(5):
        truth.record("dns_answer", n=n)
    assert [e["n"] for e in truth.events()] == [2, 3, 4]
    assert [e["n"] for e in truth.events(since=3)] == [3, 4]
    assert truth.last_seq == 5
