"""A lease per deployment, so two game days never fault one deployment at once, across processes
and machines.

The lease is one DynamoDB item per deployment, written with a condition (absent, or expired) and
kept alive by a heartbeat that extends its expiry while the run holds it. A killed holder stops
heartbeating, so its lease expires by itself; `gameday unlock --force` deletes it at once. Expiry
is compared with the writer's wall clock: hosts that share a lease table need clocks within a
small fraction of the lease duration (NTP gives milliseconds; the default lease is 120 s).

The item records who holds it (host, pid, run id, user, since, until), so a run that finds it
held can name the holder.
"""

from __future__ import annotations

import getpass
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import ClientError
from tenacity import Retrying, retry_if_result, stop_before_delay, wait_fixed

from gameday.errors import GamedayError

DEFAULT_TABLE = "gameday-leases"
DEFAULT_DURATION_S = 120.0
KEY = "deployment"


class LeaseHeld(GamedayError):
    """Another run holds the deployment's lease: refused before any change."""

    exit_code = 3

    def __init__(self, holder: Holder, waited_s: float) -> None:
        self.holder = holder
        waited = f" after waiting {waited_s:.0f} s" if waited_s else ""
        super().__init__(f"lease: {holder.deployment} is held by run {holder.run_id} ({holder.user}@{holder.host}, "
                         f"pid {holder.pid}) since {_iso(holder.since)}, until {_iso(holder.until)}{waited}; "
                         f"wait with --wait-lock S, or `gameday unlock --force` if that run is gone")


class LeaseLost(GamedayError):
    """The lease was taken away (expired and taken by another run, or force-unlocked) while held."""

    exit_code = 3


@dataclass(frozen=True)
class Holder:
    """Who holds a lease, as stored in the item."""

    deployment: str
    run_id: str
    host: str
    pid: int
    user: str
    since: float
    until: float
    token: str

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Holder:
        return cls(deployment=item[KEY]["S"], run_id=item["run_id"]["S"], host=item["host"]["S"],
                   pid=int(item["pid"]["N"]), user=item["user"]["S"], since=float(item["since"]["N"]),
                   until=float(item["until"]["N"]), token=item["token"]["S"])

    def public(self) -> dict[str, Any]:
        """What reports and messages may show (the token proves ownership: kept out)."""
        return {k: v for k, v in asdict(self).items() if k != "token"}


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class Lease:
    """Context manager: acquire (waiting up to `wait_s`), heartbeat every duration/3, release.

        with Lease(dynamodb, "Z123/api.example.com", run_id=run_id):
            ...   # faults may be injected

    `on_lost` is called (from the heartbeat thread) if the lease is found taken away; the run
    must then stop faulting at once.
    """

    def __init__(self, dynamodb: Any, deployment: str, *, run_id: str, table: str = DEFAULT_TABLE,
                 duration_s: float = DEFAULT_DURATION_S, wait_s: float = 0.0,
                 on_lost: Callable[[LeaseLost], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if duration_s <= 0:
            raise ValueError("duration_s must be > 0")
        self.dynamodb = dynamodb
        self.deployment = deployment
        self.run_id = run_id
        self.table = table
        self.duration_s = duration_s
        self.wait_s = wait_s
        self.on_lost = on_lost
        self.clock = clock
        self.token = uuid.uuid4().hex
        self.holder: Holder | None = None
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    # -- one conditional write each -----------------------------------------------------
    def try_acquire(self) -> Holder | None:
        """Take the lease if it is free or expired; None if another holds it."""
        now = self.clock()
        item = {KEY: {"S": self.deployment}, "run_id": {"S": self.run_id}, "host": {"S": socket.gethostname()},
                "pid": {"N": str(os.getpid())}, "user": {"S": _user()}, "since": {"N": repr(now)},
                "until": {"N": repr(now + self.duration_s)}, "token": {"S": self.token},
                "expires_epoch": {"N": str(int(now + self.duration_s) + 3600)}}  # DynamoDB TTL clean-up
        try:
            self.dynamodb.put_item(TableName=self.table, Item=item,
                                   ConditionExpression="attribute_not_exists(#k) OR #u < :now",
                                   ExpressionAttributeNames={"#k": KEY, "#u": "until"},
                                   ExpressionAttributeValues={":now": {"N": repr(now)}})
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        self.holder = Holder.from_item(item)
        return self.holder

    def current_holder(self) -> Holder | None:
        got = self.dynamodb.get_item(TableName=self.table, Key={KEY: {"S": self.deployment}}, ConsistentRead=True)
        return Holder.from_item(got["Item"]) if "Item" in got else None

    def extend(self) -> None:
        """Push the expiry out by one duration; LeaseLost if the item is no longer ours."""
        until = self.clock() + self.duration_s
        try:
            self.dynamodb.update_item(TableName=self.table, Key={KEY: {"S": self.deployment}},
                                      UpdateExpression="SET #u = :until, expires_epoch = :ttl",
                                      ConditionExpression="#t = :token",
                                      ExpressionAttributeNames={"#u": "until", "#t": "token"},
                                      ExpressionAttributeValues={":until": {"N": repr(until)},
                                                                 ":ttl": {"N": str(int(until) + 3600)},
                                                                 ":token": {"S": self.token}})
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise LeaseLost(f"lease: {self.deployment} is no longer held by run {self.run_id} "
                                f"(expired and taken, or force-unlocked)") from None
            raise

    def release(self) -> None:
        """Delete the item if it is still ours (never another run's)."""
        try:
            self.dynamodb.delete_item(TableName=self.table, Key={KEY: {"S": self.deployment}},
                                      ConditionExpression="#t = :token", ExpressionAttributeNames={"#t": "token"},
                                      ExpressionAttributeValues={":token": {"S": self.token}})
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    # -- the lifecycle -------------------------------------------------------------------
    def acquire(self) -> Holder:
        """Take the lease, polling up to `wait_s` (at most every 5 s); LeaseHeld names the holder."""
        started = time.monotonic()
        retrying = Retrying(stop=stop_before_delay(max(self.wait_s, 0.0)),
                            wait=wait_fixed(min(5.0, max(0.05, self.duration_s / 20))),
                            retry=retry_if_result(lambda got: got is None),
                            retry_error_callback=lambda state: None)
        holder = retrying(self.try_acquire)
        if holder is None:
            other = self.current_holder()
            holder = self.try_acquire() if other is None else None  # released between the write and the read
            if holder is None:
                raise LeaseHeld(other or self.current_holder() or _unknown(self.deployment),
                                time.monotonic() - started)
        self._start_heartbeat()
        return holder

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._heartbeat = threading.Thread(target=self._beat, name=f"lease-heartbeat-{self.deployment}", daemon=True)
        self._heartbeat.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.duration_s / 3):
            try:
                self.extend()
            except LeaseLost as lost:
                if self.on_lost is not None:
                    self.on_lost(lost)
                return
            except Exception:  # noqa: BLE001 - a passing API error: the next beat tries again, well before expiry
                continue

    def close(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=10)
            self._heartbeat = None
        if self.holder is not None:
            self.release()
            self.holder = None

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def force_unlock(dynamodb: Any, deployment: str, *, table: str = DEFAULT_TABLE) -> Holder | None:
    """Delete the deployment's lease whoever holds it; returns who held it (None: it was free)."""
    got = dynamodb.delete_item(TableName=table, Key={KEY: {"S": deployment}}, ReturnValues="ALL_OLD")
    return Holder.from_item(got["Attributes"]) if "Attributes" in got else None


def _unknown(deployment: str) -> Holder:
    """A holder that could not be read back (it came and went between two reads)."""
    return Holder(deployment, "unknown", "unknown", 0, "unknown", 0.0, 0.0, "")


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return f"uid-{os.getuid()}"
