"""Reads of one item straight from each region's table replica (strongly consistent).

Why: where a write landed and whether it replicated is the evidence of a failover
game day; it is read from the tables, not inferred from the API's answers. `ItemView`
carries the deployment's region attribute (`aws:rep:updateregion` on 2017.11.29 tables,
the handler's stamp on 2019.11.21 tables) as read; what it proves, and what corroborates
a handler's stamp, is decided in observe/landing.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from gameday import timing
from gameday.deployment import Deployment
from gameday.errors import Category, ScenarioError

_codecs: list[Any] = []


def _codec() -> tuple[Any, Any]:
    """boto3's (serializer, deserializer) for DynamoDB's typed JSON, made on first use (boto3 is a heavy import)."""
    if not _codecs:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        _codecs.extend((TypeSerializer(), TypeDeserializer()))
    return _codecs[0], _codecs[1]


class ItemNotReplicated(ScenarioError):
    """An acknowledged item did not reach a region within the replication budget."""

    category = Category.LOST_WRITES

    def __init__(self, message: str, *, last: dict[str, ItemView], history: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.last = last
        self.history = history


@dataclass
class ItemView:
    region: str
    item: dict[str, Any] | None          # plain Python values (numbers as int/float)
    written_region: str | None           # value of the deployment's region attribute

    @property
    def present(self) -> bool:
        return self.item is not None


@dataclass
class ItemWait:
    elapsed_s: float
    reached_at: float
    view: ItemView
    history: list[dict[str, Any]] = field(default_factory=list)


def plain(value: Any) -> Any:
    """DynamoDB values as plain Python (Decimal -> int or float, sets -> sorted lists)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, set):
        return sorted(plain(v) for v in value)
    return value


def _wire_key(key: dict[str, Any]) -> dict[str, Any]:
    return {name: _codec()[0].serialize(Decimal(str(v)) if isinstance(v, float) else v) for name, v in key.items()}


def read_item(clients: Any, deployment: Deployment, region: str, key: dict[str, Any]) -> ItemView:
    response = clients.dynamodb(region).get_item(TableName=deployment.table.name, Key=_wire_key(key),
                                                 ConsistentRead=True)
    raw = response.get("Item")
    item = None if raw is None else plain({k: _codec()[1].deserialize(v) for k, v in raw.items()})
    written = None if item is None else item.get(deployment.table.region_attribute)
    return ItemView(region=region, item=item, written_region=None if written is None else str(written))


def read_item_everywhere(clients: Any, deployment: Deployment, key: dict[str, Any]) -> dict[str, ItemView]:
    """{region: ItemView} for every region of the deployment."""
    return {r.name: read_item(clients, deployment, r.name, key) for r in deployment.regions}


def items_by_region(clients: Any, deployment: Deployment, key: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
    """{region: item | None} (the plain form for evidence)."""
    return {region: view.item for region, view in read_item_everywhere(clients, deployment, key).items()}


def wait_until_item_in_region(clients: Any, deployment: Deployment, region: str, key: dict[str, Any], *,
                              budget_s: float, poll_s: float) -> ItemWait:
    """Poll `region`'s replica until the item is there; ItemNotReplicated (with every region's view)."""
    history: list[dict[str, Any]] = []
    started = time.monotonic()

    def poll() -> ItemView:
        view = read_item(clients, deployment, region, key)
        history.append({"t": time.time(), "elapsed_s": time.monotonic() - started, "present": view.present})
        return view

    wait = timing.measured_poll(poll, until=lambda v: v.present, poll_s=poll_s, budget_s=budget_s)
    view = wait.value
    if not wait.reached or view is None:
        last = read_item_everywhere(clients, deployment, key)
        where = ", ".join(f"{r}: {'present' if v.present else 'absent'}" for r, v in last.items())
        raise ItemNotReplicated(f"item {key} not in {region} within {budget_s:.2f} s ({where})",
                                last=last, history=history)
    return ItemWait(elapsed_s=history[-1]["elapsed_s"], reached_at=history[-1]["t"], view=view, history=history)


def replication_budget(deployment: Deployment, aws_seconds: float = 10.0, slack_s: float = 5.0) -> float:
    """Replication is 'typically within a second'; allow `aws_seconds` scaled plus slack."""
    return timing.scaled(aws_seconds, deployment.time_scale, slack_s=slack_s)
