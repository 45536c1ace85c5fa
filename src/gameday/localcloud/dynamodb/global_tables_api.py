"""The DynamoDB global-table APIs moto lacks, added to moto's DynamoHandler.

- 2017.11.29 (legacy): CreateGlobalTable over same-named tables with streams
  (NEW_AND_OLD_IMAGES) in each region, DescribeGlobalTable, ListGlobalTables,
  UpdateGlobalTable (add or remove a replica).
- 2019.11.21 (current): UpdateTable with ReplicaUpdates (Create creates the replica table
  in that region with the same schema and streams and copies the items; Delete deletes
  it), and DescribeTable showing `Replicas` (the other regions, as AWS lists them) and
  `GlobalTableVersion`.
- `register_global_table(...)` for the CloudFormation supplement of
  AWS::DynamoDB::GlobalTable, which moto's CloudFormation skips.

Errors are moto's JSON errors, so botocore raises ClientError with AWS's codes.
Replication itself is gameday/localcloud/dynamodb/replication.py; `GlobalTables` wires both.
"""

from __future__ import annotations

import copy
import datetime
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult
from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, MockValidationException, ResourceNotFoundException
from moto.dynamodb.responses import DynamoResult

from gameday.localcloud.dynamodb import replication
from gameday.localcloud.dynamodb.replication import CURRENT, LEGACY, Replicator
from gameday.localcloud.dynamodb.strong_consistency import StrongConsistency
from gameday.localcloud.motoglue import access as moto_access
from gameday.localcloud.motoglue import patches
from gameday.localcloud.process.context import ACCOUNT_ID, CloudContext
from gameday.table_consistency import CONSISTENCIES, EVENTUAL, STRONG, mrsc_layout_problem

STREAMS = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}

_HANDLER = "moto.dynamodb.responses:DynamoHandler"
_ADDED = {
    name: patches.declare(f"{_HANDLER}.{name}", why=f"moto has no {name} (global tables {LEGACY})", kind="add")
    for name in ("create_global_table", "describe_global_table", "list_global_tables", "update_global_table")
}
_UPDATE_TABLE = patches.declare(
    f"{_HANDLER}.update_table",
    why=f"UpdateTable ReplicaUpdates (global tables {CURRENT}); moto ignores them",
    kind="wrap",
    signature="(self) -> moto.core.responses.ActionResult",
)
_TABLE_DESCRIBE = patches.declare(
    "moto.dynamodb.models.table:Table.describe",
    why=f"DescribeTable shows Replicas and GlobalTableVersion of {CURRENT} global tables",
    kind="wrap",
    signature="(self, base_key: str = 'TableDescription') -> dict[str, typing.Any]",
)


class _Originals:
    """moto's UpdateTable handler and Table.describe, as they were before GlobalTables.install()."""

    update_table: Any = None
    describe: Any = None


_ORIGINALS = _Originals()


# --- AWS-shaped errors ------------------------------------------------------------------

class _Error(JsonRESTError):
    aws_code = ""  # not `code`: werkzeug's HTTPException uses that for the HTTP status

    def __init__(self, message: str) -> None:
        super().__init__(ERROR_TYPE_PREFIX + self.aws_code, message)


class GlobalTableAlreadyExists(_Error):
    aws_code = "GlobalTableAlreadyExistsException"


class GlobalTableNotFound(_Error):
    aws_code = "GlobalTableNotFoundException"


class TableNotFound(_Error):
    aws_code = "TableNotFoundException"


class ReplicaAlreadyExists(_Error):
    aws_code = "ReplicaAlreadyExistsException"


class ReplicaNotFound(_Error):
    aws_code = "ReplicaNotFoundException"


def _invalid(message: str) -> MockValidationException:
    return MockValidationException(f"One or more parameter values were invalid: {message}")


# --- helpers ----------------------------------------------------------------------------

def _replicator() -> Replicator:
    active = replication.active()
    if active is None:
        raise MockValidationException("global tables are not available: the local cloud's replication is stopped")
    return active


def _table(region: str, name: str) -> Any:
    return moto_access.dynamodb(region).tables.get(name)


def _streams_ok(table: Any) -> bool:
    spec = table.stream_specification or {}
    return bool(spec.get("StreamEnabled")) and spec.get("StreamViewType") == "NEW_AND_OLD_IMAGES"


def _holds_items(table: Any) -> bool:
    return table is not None and bool(table.items)


def _key_schema(table: Any) -> list[tuple[str, str]]:
    return sorted((k["AttributeName"], k["KeyType"]) for k in table.schema)


def _check_legacy_replica(name: str, region: str, reference: Any | None) -> Any:
    """The checks AWS makes on a table joining a 2017.11.29 global table."""
    table = _table(region, name)
    if table is None:
        raise TableNotFound(f"Table: {name} not found in region {region}")
    if not _streams_ok(table):
        raise _invalid(f"Table: {name} in region {region} must have DynamoDB Streams enabled "
                       "with StreamViewType NEW_AND_OLD_IMAGES")
    if reference is not None and _key_schema(table) != _key_schema(reference):
        raise _invalid(f"Table: {name} in region {region} must have the same key schema as the other replicas")
    if len(table):
        raise _invalid(f"Table: {name} in region {region} must be empty to join a global table")
    if _replicator().table_of(region, name) is not None:
        raise _invalid(f"Table: {name} in region {region} is already a replica of a global table")
    return table


def _timestamp(epoch: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC)


def _global_description(gt: replication.GlobalTable) -> dict[str, Any]:
    return {
        "GlobalTableName": gt.name,
        "GlobalTableArn": f"arn:aws:dynamodb::{ACCOUNT_ID}:global-table/{gt.name}",
        "CreationDateTime": _timestamp(gt.created_at),
        "GlobalTableStatus": "ACTIVE",
        "ReplicationGroup": [{"RegionName": r, "ReplicaStatus": "ACTIVE"} for r in gt.regions],
    }


def _legacy(name: str) -> replication.GlobalTable:
    gt = _replicator().global_table(name)
    if gt is None or gt.version != LEGACY:
        raise GlobalTableNotFound(f"Global table not found: {name}")
    return gt


def _create_replica_table(source: Any, region: str) -> Any:
    """A table in `region` with `source`'s name, schema, indexes and billing, streams on."""
    billing = source.billing_mode or "PROVISIONED"
    throughput = None
    if billing != "PAY_PER_REQUEST":
        throughput = {k: source.throughput[k] for k in ("ReadCapacityUnits", "WriteCapacityUnits")}
    gsis = []
    for index in source.global_indexes:
        spec = copy.deepcopy(index.describe())
        spec.pop("IndexStatus", None)
        gsis.append(spec)
    return moto_access.dynamodb(region).create_table(
        source.name,
        schema=copy.deepcopy(source.schema),
        throughput=throughput,
        attr=copy.deepcopy(source.attr),
        global_indexes=gsis,
        indexes=[copy.deepcopy(index.describe()) for index in source.indexes],
        streams=dict(STREAMS),
        billing_mode=billing,
        sse_specification=copy.deepcopy(source.sse_specification),
        tags=copy.deepcopy(source.tags),
        deletion_protection_enabled=source.deletion_protection_enabled,
        warm_throughput=None,
    )


def _enable_streams(table: Any, region: str) -> None:
    if _streams_ok(table):
        return
    if (table.stream_specification or {}).get("StreamEnabled"):
        raise _invalid(f"Table: {table.name} in region {region} has a stream with StreamViewType "
                       f"{table.stream_specification.get('StreamViewType')}; replicas need NEW_AND_OLD_IMAGES")
    table.set_stream_specification(dict(STREAMS))


# --- 2017.11.29 APIs (methods added to DynamoHandler) -------------------------------------

def create_global_table(self: Any) -> ActionResult:
    name = self.body["GlobalTableName"]
    regions = list(dict.fromkeys(r["RegionName"] for r in self.body.get("ReplicationGroup") or []))
    if not regions:
        raise _invalid("ReplicationGroup must name at least one region")
    replicator = _replicator()
    if replicator.global_table(name) is not None:
        raise GlobalTableAlreadyExists("Global table with this name already exists")
    reference = None
    for region in regions:
        table = _check_legacy_replica(name, region, reference)
        reference = reference or table
    gt = replicator.register(name, LEGACY, regions)
    return ActionResult({"GlobalTableDescription": _global_description(gt)})


def describe_global_table(self: Any) -> ActionResult:
    return ActionResult({"GlobalTableDescription": _global_description(_legacy(self.body["GlobalTableName"]))})


def list_global_tables(self: Any) -> ActionResult:
    region = self.body.get("RegionName")
    start = self.body.get("ExclusiveStartGlobalTableName")
    limit = int(self.body.get("Limit") or 100)
    tables = sorted((gt for gt in _replicator().global_tables() if gt.version == LEGACY), key=lambda gt: gt.name)
    if region:
        tables = [gt for gt in tables if region in gt.regions]
    if start:
        tables = [gt for gt in tables if gt.name > start]
    page = tables[:limit]
    result: dict[str, Any] = {"GlobalTables": [
        {"GlobalTableName": gt.name, "ReplicationGroup": [{"RegionName": r} for r in gt.regions]} for gt in page
    ]}
    if len(tables) > limit:
        result["LastEvaluatedGlobalTableName"] = page[-1].name
    return ActionResult(result)


def update_global_table(self: Any) -> ActionResult:
    name = self.body["GlobalTableName"]
    gt = _legacy(name)
    replicator = _replicator()
    for update in self.body.get("ReplicaUpdates") or []:
        if "Create" in update:
            region = update["Create"]["RegionName"]
            if region in gt.regions:
                raise ReplicaAlreadyExists(f"Replica already exists in region {region}")
            _check_legacy_replica(name, region, _table(gt.regions[0], name))
            replicator.add_region(name, region)
        if "Delete" in update:
            region = update["Delete"]["RegionName"]
            if region not in gt.regions:
                raise ReplicaNotFound(f"Replica not found in region {region}")
            replicator.remove_region(name, region)  # legacy: the table stays, as a plain table
    return ActionResult({"GlobalTableDescription": _global_description(gt)})


# --- 2019.11.21: UpdateTable ReplicaUpdates, DescribeTable Replicas ------------------------

_GLOBAL_KEYS = ("TableName", "ReplicaUpdates", "MultiRegionConsistency", "GlobalTableWitnessUpdates")


def _update_table(self: Any) -> ActionResult:
    updates = self.body.get("ReplicaUpdates")
    witness_updates = self.body.get("GlobalTableWitnessUpdates")
    if not updates and not witness_updates and not self.body.get("MultiRegionConsistency"):
        return _ORIGINALS.update_table(self)
    name = self.body["TableName"]
    region = self.region
    table = _table(region, name)
    if table is None:
        raise ResourceNotFoundException(table_name=name)
    replicator = _replicator()
    gt = replicator.table_of(region, name)
    if gt is not None and gt.version == LEGACY:
        raise _invalid(f"Table: {name} is a global table of version {LEGACY}; use UpdateGlobalTable")
    consistency = self.body.get("MultiRegionConsistency")
    if consistency is not None or witness_updates:
        _check_mrsc_update(name, region, table, gt, updates or [], witness_updates or [], consistency)
    others = {k: v for k, v in self.body.items() if k not in _GLOBAL_KEYS and v}
    if others:
        _ORIGINALS.update_table(self)
    if consistency == STRONG:
        creates = [u["Create"]["RegionName"] for u in updates or [] if "Create" in u]
        witness = next((w["Create"]["RegionName"] for w in witness_updates or [] if "Create" in w), None)
        for target in creates:
            _enable_streams(table, region)
            _create_replica_table(table, target)
        replicator.register(name, CURRENT, [region, *creates], consistency=STRONG, witness=witness)
        return DynamoResult(table.describe())
    for update in updates:
        if "Create" in update:
            target = update["Create"]["RegionName"]
            gt = replicator.table_of(region, name)
            if target == region or (gt is not None and target in gt.regions) or _table(target, name) is not None:
                raise _invalid(f"Failed to create a replica of table {name} in region {target}: "
                               "a table with this name already exists there")
            _enable_streams(table, region)
            _create_replica_table(table, target)
            if gt is None:
                replicator.register(name, CURRENT, [region, target])
            else:
                replicator.add_region(name, target)
            replicator.seed_replica(name, region, target)
        elif "Delete" in update:
            target = update["Delete"]["RegionName"]
            gt = replicator.table_of(region, name)
            if gt is None or target not in gt.regions or target == region:
                raise _invalid(f"Cannot delete replica of table {name} in region {target}: "
                               "no such replica (or it is the table the request was sent to)")
            replicator.remove_region(name, target)
            moto_access.dynamodb(target).delete_table(name)
            if len(gt.regions) < 2:
                replicator.unregister(name)
        # "Update" (throughput or KMS overrides) changes nothing the local cloud models.
    return DynamoResult(table.describe())


def _check_mrsc_update(name: str, region: str, table: Any, gt: replication.GlobalTable | None,
                       updates: list[dict[str, Any]], witness_updates: list[dict[str, Any]],
                       consistency: str | None) -> None:
    """AWS's rules for choosing the consistency mode: only when the global table is created, every
    replica and the witness in that one request, an empty table, an accepted layout."""
    if consistency is not None and consistency not in CONSISTENCIES:
        raise _invalid(f"1 validation error detected: Value '{consistency}' at 'multiRegionConsistency' failed "
                       f"to satisfy constraint: Member must satisfy enum value set: [{', '.join(CONSISTENCIES)}]")
    if gt is not None:
        raise _invalid(f"MultiRegionConsistency and GlobalTableWitnessUpdates can only be specified when "
                       f"table {name} becomes a global table; its consistency mode cannot change")
    creates = [u["Create"]["RegionName"] for u in updates if "Create" in u]
    if not creates or len(creates) != len(updates):
        raise _invalid("MultiRegionConsistency is only valid with one or more Create actions in ReplicaUpdates")
    witnesses = [w["Create"]["RegionName"] for w in witness_updates if "Create" in w]
    if len(witnesses) != len(witness_updates) or len(witnesses) > 1:
        raise _invalid("GlobalTableWitnessUpdates: expected at most one Create action")
    if consistency != STRONG:
        if witnesses:
            raise _invalid("GlobalTableWitnessUpdates requires MultiRegionConsistency STRONG")
        return
    problem = mrsc_layout_problem([region, *creates], witnesses[0] if witnesses else None)
    if problem is not None:
        raise _invalid(problem)
    if _holds_items(table):
        raise _invalid(f"Table {name} must be empty to enable multi-Region strong consistency")
    for target in creates:
        if _table(target, name) is not None:
            raise _invalid(f"Failed to create a replica of table {name} in region {target}: "
                           "a table with this name already exists there")


def _table_describe(self: Any, base_key: str = "TableDescription") -> dict[str, Any]:
    result = _ORIGINALS.describe(self, base_key)
    active = replication.active()
    gt = active.table_of(self.region_name, self.name) if active is not None else None
    if gt is not None and gt.version == CURRENT:
        result[base_key]["GlobalTableVersion"] = CURRENT
        result[base_key]["Replicas"] = [{"RegionName": r, "ReplicaStatus": "ACTIVE"}
                                        for r in gt.regions if r != self.region_name]
        result[base_key]["MultiRegionConsistency"] = gt.consistency
        if gt.witness is not None:
            result[base_key]["GlobalTableWitnesses"] = [{"RegionName": gt.witness, "WitnessStatus": "ACTIVE"}]
    return result


# --- for the CloudFormation supplement -----------------------------------------------------

def register_global_table(table_name: str, regions: list[str], version: str = CURRENT, *,
                          consistency: str = EVENTUAL, witness: str | None = None,
                          key_schema: list[dict[str, str]] | None = None,
                          attribute_definitions: list[dict[str, str]] | None = None,
                          billing_mode: str = "PAY_PER_REQUEST",
                          provisioned_throughput: dict[str, int] | None = None,
                          global_secondary_indexes: list[dict[str, Any]] | None = None,
                          local_secondary_indexes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Create `table_name` (streams NEW_AND_OLD_IMAGES) in every region that lacks it and replicate.

    The schema comes from the arguments or, if they are absent, from the table in the first
    region that has it. Idempotent: regions already replicating are left alone, new ones are
    added and seeded with the items. `consistency` STRONG (with `witness`, or three regions) makes
    an MRSC table; ValueError with AWS's reason when MRSC refuses the layout or a table holds items.
    Returns {"name", "version", "regions", "consistency", "witness"}.
    """
    replicator = _replicator()
    regions = list(dict.fromkeys(regions))
    if not regions:
        raise ValueError("register_global_table needs at least one region")
    if consistency not in CONSISTENCIES:
        raise ValueError(f"MultiRegionConsistency: expected one of {', '.join(CONSISTENCIES)}, got {consistency!r}")
    if consistency == STRONG:
        problem = mrsc_layout_problem(regions, witness) if version == CURRENT else \
            f"multi-Region strong consistency needs a {CURRENT} table, got {version}"
        if problem is None and any(_holds_items(_table(r, table_name)) for r in regions):
            problem = f"multi-Region strong consistency needs an empty table; {table_name} holds items"
        if problem is not None:
            raise ValueError(problem)
    elif witness is not None:
        raise ValueError("GlobalTableWitnesses: a witness is only for MultiRegionConsistency STRONG")
    template = next((t for t in (_table(r, table_name) for r in regions) if t is not None), None)
    if template is None:
        if not key_schema or not attribute_definitions:
            raise ValueError(f"table {table_name} exists in none of {regions}: key_schema and "
                             "attribute_definitions are needed to create it")
        template = moto_access.dynamodb(regions[0]).create_table(
            table_name, schema=key_schema, throughput=provisioned_throughput, attr=attribute_definitions,
            global_indexes=global_secondary_indexes or [], indexes=local_secondary_indexes or [],
            streams=dict(STREAMS), billing_mode=billing_mode, sse_specification=None, tags=[],
            deletion_protection_enabled=False, warm_throughput=None)
    source_region = template.region_name
    _enable_streams(template, source_region)
    created: list[str] = []
    for region in regions:
        table = _table(region, table_name)
        if table is None:
            _create_replica_table(template, region)
            created.append(region)
        else:
            _enable_streams(table, region)
    gt = replicator.global_table(table_name)
    if gt is None:
        gt = replicator.register(table_name, version, regions, consistency=consistency, witness=witness)
    else:
        for region in regions:
            replicator.add_region(table_name, region)
    for region in created:
        replicator.seed_replica(table_name, source_region, region)
    return gt.describe()


def deregister_global_table(table_name: str, *, delete_tables: bool = False) -> None:
    """Stop replicating `table_name` (stack deletion); optionally delete every replica table."""
    replicator = _replicator()
    gt = replicator.global_table(table_name)
    if gt is None:
        return
    replicator.unregister(table_name)
    if delete_tables:
        for region in gt.regions:
            if _table(region, table_name) is not None:
                moto_access.dynamodb(region).delete_table(table_name)


# --- wiring -----------------------------------------------------------------------------

class GlobalTables:
    """Global tables for the local cloud: replication plus the APIs. install() before the first request."""

    def __init__(self, ctx: CloudContext) -> None:
        self.replicator = Replicator(ctx)
        self.strong = StrongConsistency(ctx, self.replicator)

    def install(self) -> None:
        self.replicator.install()
        self.strong.install()
        _ORIGINALS.update_table = _UPDATE_TABLE.original()
        _ORIGINALS.describe = _TABLE_DESCRIBE.original()
        _UPDATE_TABLE.apply(_update_table)
        _TABLE_DESCRIBE.apply(_table_describe)
        added = {"create_global_table": create_global_table, "describe_global_table": describe_global_table,
                 "list_global_tables": list_global_tables, "update_global_table": update_global_table}
        for name, function in added.items():
            _ADDED[name].apply(function)

    def start(self) -> None:
        self.replicator.start()

    def stop(self) -> None:
        self.replicator.stop()
