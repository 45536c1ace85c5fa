"""Global-table replication in the local cloud, push-style from moto's stream hook.

Why push-style: polling every replica's stream would cost a GetRecords loop per table
and region, and moto stores a new iterator per call. Instead moto's `StreamShard.add`
(called inside every write, in the request's thread) is wrapped: the request thread only
stamps the item (2017.11.29), records the write's version and enqueues one delivery per
other replica. One delivery thread applies each delivery when due (write time + scaled
replication delay) straight into the target region's moto table.

AWS behaviour reproduced:
- 2017.11.29 stamps `aws:rep:updateregion`, `aws:rep:updatetime`, `aws:rep:deleting` on
  every item in every replica, the written item included; 2019.11.21 shows no stamps. In the
  source region the stamps are a second write (a second stream record) shortly after the
  write, as on AWS: a read right after the write may not show them yet.
- Last writer wins per item: a write's version is (write time, region); a delivery older
  than what the target holds (item or tombstone) is superseded. The version lives on
  moto's Item object (attribute VERSION_ATTR) and, for deletes, in a tombstone map.
- Deletes replicate. Applied writes are never replicated again (thread-local flag).
- Faults: pause a region (deliveries to and from it are held, then delivered in order on
  resume) and drop (deliveries into a region are discarded until undropped).

Memory: moto keeps every stream record in `StreamShard.items` and every model instance
in the class's `instances_tracked` list; both grow without bound under steady traffic.
The shard keeps a bounded tail here (sequence numbers stay consistent), and the two
DynamoDB write-path classes stop tracking instances.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from gameday.localcloud.motoglue import access as moto_access
from gameday.localcloud.motoglue import patches
from gameday.localcloud.process.context import CloudContext

log = logging.getLogger(__name__)

LEGACY = "2017.11.29"
CURRENT = "2019.11.21"
VERSIONS = (LEGACY, CURRENT)

STAMP_REGION = "aws:rep:updateregion"
STAMP_TIME = "aws:rep:updatetime"
STAMP_DELETING = "aws:rep:deleting"
STAMP_DELAY_FRACTION = 0.5          # the stamping second write lands after this share of the replication delay
# Replication crosses regions: on AWS it takes "typically within a second", many client round
# trips to one region. Loopback round trips do not shrink with the time scale, so a scaled delay
# of a few milliseconds would let every replica hold an item before any client could read it,
# which AWS never does. The delay keeps this real-time floor (about ten round trips of a loaded machine).
REPLICATION_FLOOR_S = 0.2

VERSION_ATTR = "_gameday_version"   # (write time, region) of the write an Item holds
ZERO_VERSION: tuple[float, str] = (0.0, "")  # items written before replication started

# A stream record holds both images (~2 KB): 1200 per shard were ~5 MiB of a two-region cloud's
# warm-up growth. 300 still give a reader polling every second 1 s of history at 300 writes/s.
STREAM_TAIL = 250                   # stream records kept per shard after a trim
STREAM_TRIM_SLACK = 50              # trim in batches: a shard never holds more than the sum
STREAM_MAX_RECORDS = STREAM_TAIL + STREAM_TRIM_SLACK

TOMBSTONE_MARGIN_S = 1.0            # keep tombstones this long past the oldest pending write
PRUNE_EVERY_S = 1.0

_SHARD_ADD = patches.declare(
    "moto.dynamodb.models.table:StreamShard.add",
    why="push-style change events for global-table replication; stream trimming; awsRegion fix",
    kind="wrap",
    signature="(self, old: moto.dynamodb.models.dynamo_type.Item | None, "
              "new: moto.dynamodb.models.dynamo_type.Item | None) -> None",
)
_SHARD_GET = patches.declare(
    "moto.dynamodb.models.table:StreamShard.get",
    why="an iterator older than the trimmed head reads from the oldest kept record instead of failing",
    kind="wrap",
    signature="(self, start: int, quantity: int) -> list[dict[str, typing.Any]]",
)
_RECORD_TRACKING = patches.declare(
    "moto.dynamodb.models.table:StreamRecord.instances_tracked",
    why="moto keeps every stream record ever made (dashboard bookkeeping): memory grows per write",
    kind="replace",
)
_ITEM_TRACKING = patches.declare(
    "moto.dynamodb.models.dynamo_type:Item.instances_tracked",
    why="moto keeps every Item ever made, overwritten ones included: memory grows per write",
    kind="replace",
)


class _Untracked(list[Any]):
    """An instances_tracked list that keeps nothing."""

    def append(self, _item: Any) -> None:
        return None


class _ApplyingFlag(threading.local):
    active = False


class _Installed:
    """The installed replicator and moto's original StreamShard methods, read by the hooks below."""

    replicator: Replicator | None = None
    add: Any = None
    get: Any = None


_APPLYING = _ApplyingFlag()
_INSTALLED = _Installed()


def active() -> Replicator | None:
    """The replicator of this process's local cloud, if one is installed."""
    return _INSTALLED.replicator


# --- moto hooks (module-level so re-applying a patch point is harmless) ------------------

def _shard_add(shard: Any, old: Any, new: Any) -> None:
    replicator = _INSTALLED.replicator
    if replicator is None or _APPLYING.active:
        _INSTALLED.add(shard, old, new)
        _tidy(shard)
        return
    replicator.on_write(shard, old, new)


def _shard_get(shard: Any, start: int, quantity: int) -> list[dict[str, Any]]:
    return _INSTALLED.get(shard, max(start, shard.starting_sequence_number), quantity)


def _tidy(shard: Any) -> None:
    """awsRegion of the newest record (moto says us-east-1 always); keep a bounded tail."""
    items = shard.items
    if items:
        items[-1].record["awsRegion"] = shard.table.region_name
    excess = len(items) - STREAM_TAIL
    if excess > STREAM_TRIM_SLACK:
        del items[:excess]
        shard.starting_sequence_number += excess


# --- model ------------------------------------------------------------------------------

class Replica:
    """One region's table of a global table: the lock that orders its writes, its tombstones."""

    __slots__ = ("region", "lock", "tombstones")

    def __init__(self, region: str) -> None:
        self.region = region
        self.lock = threading.RLock()
        self.tombstones: dict[tuple[Any, Any], tuple[float, str]] = {}


@dataclass
class GlobalTable:
    name: str
    version: str
    regions: list[str]
    consistency: str = "EVENTUAL"       # or "STRONG": multi-Region strong consistency
    witness: str | None = None          # MRSC's third region when it holds no replica
    created_at: float = field(default_factory=time.time)
    replicas: dict[str, Replica] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for region in self.regions:
            self.replicas.setdefault(region, Replica(region))

    @property
    def strong(self) -> bool:
        return self.consistency == "STRONG"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "regions": list(self.regions),
                "consistency": self.consistency, "witness": self.witness}


class _Change:
    """One write in one replica, to be delivered to every other replica."""

    __slots__ = ("table", "source", "op", "hash_key", "range_key", "key_names", "image",
                 "version", "written_at", "_key_json", "_token")

    def __init__(self, table: str, source: str, op: str, *, hash_key: Any, range_key: Any,
                 key_names: tuple[str, str | None], image: dict[str, Any] | None,
                 version: tuple[float, str]) -> None:
        self.table = table
        self.source = source
        self.op = op
        self.hash_key = hash_key
        self.range_key = range_key
        self.key_names = key_names
        self.image = image
        self.version = version
        self.written_at = version[0]
        self._key_json: dict[str, Any] | None = None
        self._token: tuple[Any, ...] | None = None

    def token(self) -> tuple[Any, ...]:
        """The key as key_token gives it (computed once)."""
        if self._token is None:
            self._token = key_token(self.key_json())
        return self._token

    def key_json(self) -> dict[str, Any]:
        """The key as DynamoDB JSON, as stream records show it."""
        if self._key_json is None:
            key = {self.key_names[0]: self.hash_key.to_json()}
            if self.key_names[1] is not None and self.range_key is not None:
                key[self.key_names[1]] = self.range_key.to_json()
            self._key_json = key
        return self._key_json


_SCALARS = frozenset(("S", "N", "B", "BOOL", "NULL"))


def key_token(key_json: dict[str, Any]) -> tuple[Any, ...]:
    """A hashable form of a DynamoDB-JSON key; numbers compare by value ("5" and "5.0" are one key)."""
    parts = []
    for name in sorted(key_json):
        (kind, value), = key_json[name].items()
        if kind == "N":
            try:
                value = Decimal(value).normalize()
            except InvalidOperation:
                pass
        parts.append((name, kind, value))
    return tuple(parts)


def _detached(image: dict[str, Any]) -> dict[str, Any]:
    """A copy of a DynamoDB-JSON image sharing no mutable value (sets, lists, maps)."""
    out: dict[str, Any] = {}
    for name, value in image.items():
        (kind,) = value
        out[name] = value if kind in _SCALARS else copy.deepcopy(value)
    return out


def _current(table: Any, hash_key: Any, range_key: Any) -> Any:
    if range_key is None:
        return table.items.get(hash_key)
    bucket = table.items.get(hash_key)
    return bucket.get(range_key) if bucket else None


def _store(table: Any, item: Any) -> None:
    if item.range_key is None:
        table.items[item.hash_key] = item
    else:
        table.items[item.hash_key][item.range_key] = item


def _remove(table: Any, hash_key: Any, range_key: Any) -> None:
    if range_key is None:
        table.items.pop(hash_key, None)
    else:
        bucket = table.items.get(hash_key)
        if bucket:
            bucket.pop(range_key, None)


def _stamps_json(region: str, now: float) -> dict[str, Any]:
    """The 2017.11.29 stamps as DynamoDB JSON."""
    return {STAMP_DELETING: {"BOOL": False}, STAMP_REGION: {"S": region}, STAMP_TIME: {"N": f"{now:.6f}"}}


# --- the replicator ---------------------------------------------------------------------

class Replicator:
    """Replication between every pair of replicas of every registered global table."""

    def __init__(self, ctx: CloudContext) -> None:
        self._ctx = ctx
        self._registry_lock = threading.Lock()
        self._tables: dict[str, GlobalTable] = {}
        # (region, table name) -> (global table, replica); replaced whole, read without a lock
        self._by_table: dict[tuple[str, str], tuple[GlobalTable, Replica]] = {}
        self._cv = threading.Condition()
        self._heap: list[tuple[float, int, str, _Change]] = []   # (due monotonic, seq, target, change)
        self._held: list[tuple[float, int, str, _Change]] = []
        self._seq = itertools.count()
        self._paused: set[str] = set()
        self._dropped: set[str] = set()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._stats = {"applied": 0, "superseded": 0, "discarded": 0, "errors": 0}
        self._in_flight = 0                 # popped from the heap, not yet applied
        self._delivering: list[tuple[float, int, str, _Change]] = []   # that batch
        self._next_prune = 0.0

    # -- lifecycle --

    def install(self) -> None:
        """Apply the moto patch points and add the control routes (before the first request)."""
        installed = _INSTALLED.replicator
        if installed is not None and installed is not self:
            raise RuntimeError("a replicator is already installed in this process (one local cloud per process)")
        _INSTALLED.add = _SHARD_ADD.original()
        _INSTALLED.get = _SHARD_GET.original()
        _SHARD_ADD.apply(_shard_add)
        _SHARD_GET.apply(_shard_get)
        _RECORD_TRACKING.apply(_Untracked())
        _ITEM_TRACKING.apply(_Untracked())
        _INSTALLED.replicator = self
        control = self._ctx.control
        control.add("POST", "/_gameday/replication/pause", self._route(self.pause))
        control.add("POST", "/_gameday/replication/resume", self._route(self.resume))
        control.add("POST", "/_gameday/replication/drop", self._route(self.drop))
        control.add("POST", "/_gameday/replication/undrop", self._route(self.undrop))
        control.add("GET", "/_gameday/replication/status", lambda query, body: (200, self.status()))

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="replication", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if _INSTALLED.replicator is self:
            _INSTALLED.replicator = None

    @property
    def delay_s(self) -> float:
        """The replication delay in local seconds: scaled from AWS seconds, never below the floor."""
        return max(self._ctx.scale.seconds(self._ctx.settings.replication_delay_s), REPLICATION_FLOOR_S)

    # -- registry --

    def register(self, name: str, version: str, regions: list[str], *, consistency: str = "EVENTUAL",
                 witness: str | None = None) -> GlobalTable:
        """Start replicating table `name` between `regions` (the tables must exist)."""
        if version not in VERSIONS:
            raise ValueError(f"global table version must be one of {VERSIONS}, got {version!r}")
        with self._registry_lock:
            if name in self._tables:
                raise ValueError(f"global table {name} already exists")
            table = GlobalTable(name=name, version=version, regions=list(dict.fromkeys(regions)),
                                consistency=consistency, witness=witness)
            self._tables[name] = table
            self._reindex()
            return table

    def add_region(self, name: str, region: str) -> GlobalTable:
        with self._registry_lock:
            table = self._tables[name]
            if region not in table.regions:
                table.replicas[region] = Replica(region)
                table.regions.append(region)
                self._reindex()
            return table

    def remove_region(self, name: str, region: str) -> GlobalTable:
        with self._registry_lock:
            table = self._tables[name]
            if region in table.regions:
                table.regions.remove(region)
                table.replicas.pop(region, None)
                self._reindex()
            return table

    def unregister(self, name: str) -> None:
        with self._registry_lock:
            if self._tables.pop(name, None) is not None:
                self._reindex()

    def seed_replica(self, name: str, source_region: str, target_region: str) -> int:
        """Copy the source replica's items into a new replica (the target must be registered).

        Writes made meanwhile are being replicated too; versions decide, so nothing newer is
        overwritten. Returns the number of items copied.
        """
        source = moto_access.dynamodb(source_region).tables.get(name)
        target = moto_access.dynamodb(target_region).tables.get(name)
        replica = self.replica(target_region, name)
        if source is None or target is None or replica is None:
            raise ValueError(f"cannot seed {name}: no table or replica in {source_region} or {target_region}")
        buckets = list(source.items.values())  # list() of a dict view: one step under the GIL
        items = buckets if source.range_key_attr is None else [i for b in buckets for i in list(b.values())]
        copied = 0
        with replica.lock:
            _APPLYING.active = True
            try:
                for item in items:
                    version = getattr(item, VERSION_ATTR, ZERO_VERSION)
                    key = (item.hash_key, item.range_key)
                    current = _current(target, item.hash_key, item.range_key)
                    if current is not None:
                        if getattr(current, VERSION_ATTR, ZERO_VERSION) >= version:
                            continue
                    elif key in replica.tombstones and replica.tombstones[key] >= version:
                        continue
                    applied = target.put_item(_detached(item.to_json()["Attributes"]), overwrite=True)
                    setattr(applied, VERSION_ATTR, version)
                    copied += 1
            finally:
                _APPLYING.active = False
        return copied

    def global_table(self, name: str) -> GlobalTable | None:
        return self._tables.get(name)

    def global_tables(self) -> list[GlobalTable]:
        return list(self._tables.values())

    def table_of(self, region: str, name: str) -> GlobalTable | None:
        entry = self._by_table.get((region, name))
        return entry[0] if entry else None

    def replica(self, region: str, name: str) -> Replica | None:
        entry = self._by_table.get((region, name))
        return entry[1] if entry else None

    def known_regions(self) -> list[str]:
        names = [spec.name for spec in self._ctx.regions]
        for table in list(self._tables.values()):
            names.extend(table.regions)
        return list(dict.fromkeys(names))

    def _reindex(self) -> None:
        self._by_table = {(region, t.name): (t, t.replicas[region])
                          for t in self._tables.values() for region in t.regions}

    # -- the write path (request thread: keep it cheap) --

    def on_write(self, shard: Any, old: Any, new: Any) -> None:
        table = shard.table
        entry = self._by_table.get((table.region_name, table.name))
        if entry is None:
            _INSTALLED.add(shard, old, new)
            _tidy(shard)
            return
        global_table, replica = entry
        region = replica.region
        item = new if new is not None else old
        hash_key, range_key = item.hash_key, item.range_key
        with replica.lock:
            # The version is taken under the lock so the lock's order is the writers' order.
            now = time.time()
            version = (now, region)
            if new is not None:
                setattr(new, VERSION_ATTR, version)
                replica.tombstones.pop((hash_key, range_key), None)
                # A delivery may have replaced the item between moto's write and this hook:
                # this write is the newer one, so put it back.
                if _current(table, hash_key, range_key) is not new:
                    _store(table, new)
            else:
                replica.tombstones[(hash_key, range_key)] = version
                if _current(table, hash_key, range_key) is not None:
                    _remove(table, hash_key, range_key)
            _INSTALLED.add(shard, old, new)
            image = None
            if new is not None:
                items = shard.items
                image = items[-1].record["dynamodb"].get("NewImage") if items else None
                if image is None:
                    image = new.to_json()["Attributes"]
                image = _detached(image)
                if global_table.version == LEGACY:  # replicas receive the stamped item
                    image.update(_stamps_json(region, now))
            _tidy(shard)
        key_names = (table.hash_key_attr, table.range_key_attr)
        change = _Change(table.name, region, "put" if new is not None else "delete",
                         hash_key=hash_key, range_key=range_key, key_names=key_names, image=image, version=version)
        mono = time.monotonic()
        due = mono + self.delay_s
        targets = [r for r in global_table.regions if r != region]
        with self._cv:
            for target in targets:
                heapq.heappush(self._heap, (due, next(self._seq), target, change))
            if new is not None and global_table.version == LEGACY:
                # AWS stamps legacy items in a second write in the source region (two stream
                # records per write): a read right after the write may not show the stamps yet.
                stamp = _Change(table.name, region, "stamp", hash_key=hash_key, range_key=range_key,
                                key_names=key_names, image=image, version=version)
                heapq.heappush(self._heap, (mono + self.delay_s * STAMP_DELAY_FRACTION, next(self._seq), region, stamp))
            if self._heap[0][3].version is version:
                self._cv.notify()

    # -- the delivery thread --

    def _run(self) -> None:
        while True:
            batch: list[tuple[float, int, str, _Change]] = []
            with self._cv:
                while not self._stopping:
                    now = time.monotonic()
                    while self._heap and self._heap[0][0] <= now:
                        entry = heapq.heappop(self._heap)
                        if entry[3].op != "stamp" and (entry[2] in self._paused or entry[3].source in self._paused):
                            self._held.append(entry)
                        else:
                            batch.append(entry)
                    if batch:
                        self._in_flight = len(batch)
                        self._delivering = batch
                        break
                    timeout = max(self._heap[0][0] - now, 0.0) if self._heap else PRUNE_EVERY_S
                    self._cv.wait(min(timeout, PRUNE_EVERY_S))
                    if time.monotonic() >= self._next_prune:
                        break
                if self._stopping:
                    return
            for _, _, target, change in batch:
                try:
                    self._deliver(target, change)
                except Exception:  # one bad delivery must not stop replication
                    self._stats["errors"] += 1
                    log.exception("replication of %s %s -> %s failed", change.table, change.source, target)
            if batch:
                with self._cv:
                    self._in_flight = 0
                    self._delivering = []
            if time.monotonic() >= self._next_prune:
                self._prune_tombstones()

    def catch_up(self, target: str, table: str, keys: Collection[tuple[Any, ...]] | None = None) -> int:
        """Apply now every write still on its way into `target`'s replica of `table` (of these items'
        keys as key_token gives them, or all): what a strongly consistent read needs. Versions
        decide, so the regular delivery that follows is superseded. One pass over what is pending,
        however many keys. Returns the number of deliveries applied ahead of time."""
        with self._cv:
            pending = [e for e in itertools.chain(self._heap, self._held, self._delivering)
                       if e[2] == target and e[3].table == table and e[3].op != "stamp"
                       and (keys is None or e[3].token() in keys)]
        applied = 0
        for _, _, _, change in sorted(pending, key=lambda e: e[3].version):
            applied += self._deliver(target, change, ahead=True)
        return applied

    def _deliver(self, target: str, change: _Change, *, ahead: bool = False) -> bool:
        if target in self._dropped and change.op != "stamp" and not ahead:
            self._stats["discarded"] += 1
            return False
        entry = self._by_table.get((target, change.table))
        if entry is None or entry[0].replicas.get(change.source) is None:
            return False  # replica removed meanwhile
        replica = entry[1]
        table = moto_access.dynamodb(target).tables.get(change.table)
        if table is None:
            return False
        key = (change.hash_key, change.range_key)
        if change.op == "stamp":
            self._apply_stamp(table, replica, change)
            return False
        with replica.lock:
            current = _current(table, change.hash_key, change.range_key)
            if current is not None:
                have = getattr(current, VERSION_ATTR, ZERO_VERSION)
            else:
                have = replica.tombstones.get(key, ZERO_VERSION)
            if have >= change.version:
                self._stats["superseded"] += 1
                return False
            _APPLYING.active = True
            try:
                if change.op == "put":
                    applied = table.put_item(_detached(change.image), overwrite=True)  # type: ignore[arg-type]
                    setattr(applied, VERSION_ATTR, change.version)
                    replica.tombstones.pop(key, None)
                else:
                    table.delete_item(change.hash_key, change.range_key)
                    replica.tombstones[key] = change.version
            finally:
                _APPLYING.active = False
        lag = time.time() - change.written_at
        self._stats["applied"] += 1
        self._ctx.truth.record("replication_applied", table=change.table, source=change.source, target=target,
                               key=change.key_json(), lag_s=lag, op=change.op)
        return True

    def _apply_stamp(self, table: Any, replica: Replica, change: _Change) -> None:
        """The legacy second write: the stamps on the item the write left, unless a newer write replaced it."""
        with replica.lock:
            current = _current(table, change.hash_key, change.range_key)
            if current is None or getattr(current, VERSION_ATTR, ZERO_VERSION) != change.version:
                self._stats["superseded"] += 1
                return
            _APPLYING.active = True
            try:
                applied = table.put_item(_detached(change.image or {}), overwrite=True)
                setattr(applied, VERSION_ATTR, change.version)
            finally:
                _APPLYING.active = False

    def _prune_tombstones(self) -> None:
        """Forget tombstones no pending delivery can be older than (deletes must not grow memory)."""
        self._next_prune = time.monotonic() + PRUNE_EVERY_S
        with self._cv:
            pending = [e[3].written_at for e in self._heap[:1]] + [e[3].written_at for e in self._held]
        horizon = min(pending, default=time.time()) - TOMBSTONE_MARGIN_S
        for _, replica in list(self._by_table.values()):
            if not replica.tombstones:
                continue
            with replica.lock:
                stale = [k for k, v in replica.tombstones.items() if v[0] < horizon]
                for k in stale:
                    del replica.tombstones[k]

    # -- faults --

    def _check_region(self, region: Any) -> str:
        known = self.known_regions()
        if not isinstance(region, str) or region not in known:
            raise ValueError(f"unknown region {region!r}; known regions: {', '.join(known)}")
        return region

    def pause(self, region: str) -> dict[str, Any]:
        """Hold every delivery to and from `region` (the FIS pause-replication fault)."""
        region = self._check_region(region)
        with self._cv:
            changed = region not in self._paused
            self._paused.add(region)
        if changed:
            self._ctx.truth.record("replication_paused", region=region)
        return {"region": region, "changed": changed, **self.status()}

    def resume(self, region: str) -> dict[str, Any]:
        """Deliver what was held for `region`, in write order, then replicate as usual."""
        region = self._check_region(region)
        with self._cv:
            changed = region in self._paused
            self._paused.discard(region)
            still, released = [], 0
            for entry in self._held:
                if entry[2] in self._paused or entry[3].source in self._paused:
                    still.append(entry)
                else:
                    heapq.heappush(self._heap, entry)  # original due and order: all past due
                    released += 1
            self._held = still
            self._cv.notify()
        if changed:
            self._ctx.truth.record("replication_resumed", region=region, released=released)
        return {"region": region, "changed": changed, "released": released, **self.status()}

    def drop(self, region: str) -> dict[str, Any]:
        """Silently discard every delivery into `region` (proves the harness sees lost writes)."""
        region = self._check_region(region)
        with self._cv:
            changed = region not in self._dropped
            self._dropped.add(region)
        if changed:
            self._ctx.truth.record("replication_dropped", region=region)
        return {"region": region, "changed": changed, **self.status()}

    def undrop(self, region: str) -> dict[str, Any]:
        region = self._check_region(region)
        with self._cv:
            changed = region in self._dropped
            self._dropped.discard(region)
        if changed:
            self._ctx.truth.record("replication_undropped", region=region)
        return {"region": region, "changed": changed, **self.status()}

    def status(self) -> dict[str, Any]:
        with self._cv:
            pending, held = len(self._heap) + self._in_flight, len(self._held)
            paused, dropped = sorted(self._paused), sorted(self._dropped)
        return {
            "delay_s": self.delay_s,
            "paused": paused,
            "dropped": dropped,
            "pending": pending,
            "held": held,
            **dict(self._stats),
            "global_tables": [t.describe() for t in self.global_tables()],
        }

    @staticmethod
    def _route(action: Any) -> Any:
        def handler(query: dict[str, str], body: Any) -> tuple[int, Any]:
            if not isinstance(body, dict) or "region" not in body:
                return 400, {"error": 'body must be JSON {"region": "<region name>"}'}
            try:
                return 200, action(body["region"])
            except ValueError as exc:
                return 400, {"error": str(exc)}
        return handler
