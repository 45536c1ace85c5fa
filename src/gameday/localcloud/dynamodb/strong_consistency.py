"""Multi-Region strong consistency (MRSC) for the local cloud's global tables.

What AWS promises for a table with MultiRegionConsistency STRONG, and how it is reproduced:
- A write is acknowledged only once it is committed across regions. Here it stays *in flight*
  for the commit time (`mrsc_commit_s` AWS seconds, scaled, never below a real-time floor, as
  loopback round trips do not shrink with the time scale) before moto's answer goes back.
- A write to an item that a request in another region is modifying is rejected with
  `ReplicatedWriteConflictException` (HTTP 400, retry-safe). Writes from one region to the
  same item are serialised as on any table.
- A strongly consistent read (ConsistentRead true: GetItem, Query, Scan, BatchGetItem) in any
  region sees every acknowledged write: before it is served, the replica catches up on the
  deliveries still pending into it. Eventually consistent reads keep the replication delay,
  as on AWS, so a harness that forgets ConsistentRead sees stale data here too.
- Transactions are not supported on MRSC tables (ValidationException).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, MockValidationException

from gameday.localcloud.dynamodb.replication import Replicator, key_token
from gameday.localcloud.motoglue import access as moto_access
from gameday.localcloud.motoglue import patches
from gameday.localcloud.process.context import CloudContext

# An MRSC write's in-flight time never drops below this (local seconds): about two loopback round
# trips of a loaded machine, the least a cross-region commit could be when clients take that long.
COMMIT_FLOOR_S = 0.01

_HANDLER = "moto.dynamodb.responses:DynamoHandler"
_WRITES = ("put_item", "update_item", "delete_item", "batch_write_item")
_READS = ("get_item", "query", "scan", "batch_get_item")
_TRANSACTIONS = ("transact_write_items", "transact_get_items")
_POINTS = {
    name: patches.declare(f"{_HANDLER}.{name}", why="multi-Region strong consistency: in-flight writes, "
                          "conflicts across regions, strongly consistent reads that see every commit",
                          kind="wrap", signature="(self) -> moto.core.responses.ActionResult")
    for name in (*_WRITES, *_READS, *_TRANSACTIONS)
}


class ReplicatedWriteConflict(JsonRESTError):
    """AWS's ReplicatedWriteConflictException (400): the item is being modified in another region."""

    def __init__(self, table: str) -> None:
        super().__init__(ERROR_TYPE_PREFIX + "ReplicatedWriteConflictException",
                         f"One or more items in table {table} are being modified by a request in another Region")


class StrongConsistency:
    """The in-flight writes of every MRSC table, and the wraps that give its reads and writes AWS's rules."""

    def __init__(self, ctx: CloudContext, replicator: Replicator) -> None:
        self._ctx = ctx
        self._replicator = replicator
        self._lock = threading.Lock()
        # (table, key token) -> (region, number of that region's requests writing it)
        self._in_flight: dict[tuple[str, tuple[Any, ...]], tuple[str, int]] = {}
        self.conflicts = 0

    @property
    def commit_s(self) -> float:
        return max(self._ctx.scale.seconds(self._ctx.settings.mrsc_commit_s), COMMIT_FLOOR_S)

    def install(self) -> None:
        for name, point in _POINTS.items():
            original = point.original()
            if name in _WRITES:
                point.apply(self._write(name, original))
            elif name in _READS:
                point.apply(self._read(name, original))
            else:
                point.apply(self._transaction(original))

    # -- which strong tables and items a request touches --

    def _strong(self, region: str, table: str) -> bool:
        gt = self._replicator.table_of(region, table)
        return gt is not None and gt.strong

    def _keys(self, region: str, table: str, item_or_key: dict[str, Any]) -> tuple[Any, ...]:
        moto_table = moto_access.dynamodb(region).tables.get(table)
        names = (moto_table.hash_key_attr, moto_table.range_key_attr) if moto_table is not None else ()
        return key_token({n: item_or_key[n] for n in names if n and n in item_or_key})

    def _written(self, name: str, handler: Any) -> list[tuple[str, tuple[Any, ...]]]:
        region, body = handler.region, handler.body
        if name == "batch_write_item":
            out = []
            for table, requests in (body.get("RequestItems") or {}).items():
                if not self._strong(region, table):
                    continue
                for request in requests:
                    put, delete = request.get("PutRequest"), request.get("DeleteRequest")
                    item = (put or {}).get("Item") or (delete or {}).get("Key") or {}
                    out.append((table, self._keys(region, table, item)))
            return out
        table = body.get("TableName", "")
        if not self._strong(region, table):
            return []
        return [(table, self._keys(region, table, body.get("Item") or body.get("Key") or {}))]

    # -- writes --

    @contextmanager
    def _writing(self, region: str, keys: list[tuple[str, tuple[Any, ...]]]) -> Iterator[None]:
        with self._lock:
            for key in keys:
                holder = self._in_flight.get(key)
                if holder is not None and holder[0] != region:
                    self.conflicts += 1
                    self._ctx.truth.record("write_conflict", table=key[0], region=region, holder=holder[0])
                    raise ReplicatedWriteConflict(key[0])
            for key in keys:
                holder = self._in_flight.get(key)
                self._in_flight[key] = (region, (holder[1] if holder else 0) + 1)
        try:
            yield
        finally:
            with self._lock:
                for key in keys:
                    holder = self._in_flight.get(key)
                    if holder is None:
                        continue
                    if holder[1] <= 1:
                        del self._in_flight[key]
                    else:
                        self._in_flight[key] = (holder[0], holder[1] - 1)

    def _write(self, name: str, original: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def handler(this: Any) -> Any:
            keys = self._written(name, this)
            if not keys:
                return original(this)
            with self._writing(this.region, keys):
                for table, key in keys:   # conditions are evaluated on the latest committed item
                    self._replicator.catch_up(this.region, table, {key})
                result = original(this)
                time.sleep(self.commit_s)      # the cross-region commit: acknowledged after it
            return result
        return handler

    # -- reads --

    def _read(self, name: str, original: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def handler(this: Any) -> Any:
            region, body = this.region, this.body
            if name == "batch_get_item":
                for table, spec in (body.get("RequestItems") or {}).items():
                    if spec.get("ConsistentRead") and self._strong(region, table):
                        self._replicator.catch_up(region, table, {self._keys(region, table, key)
                                                                  for key in spec.get("Keys") or []})
            elif body.get("ConsistentRead") and self._strong(region, body.get("TableName", "")):
                table = body["TableName"]
                one = {self._keys(region, table, body["Key"])} if name == "get_item" else None   # None: all
                self._replicator.catch_up(region, table, one)
            return original(this)
        return handler

    def _transaction(self, original: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def handler(this: Any) -> Any:
            for entry in this.body.get("TransactItems") or []:
                for operation in entry.values():
                    table = operation.get("TableName", "") if isinstance(operation, dict) else ""
                    if self._strong(this.region, table):
                        raise MockValidationException(
                            f"Transactions are not supported on table {table}: it uses multi-Region strong consistency")
            return original(this)
        return handler

