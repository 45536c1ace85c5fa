"""GetItem (GET /item/{itemId}): read one item strongly consistently from this region's table.

Numbers come back as JSON numbers (DynamoDB Decimals), and the replication attributes
(aws:rep:* on 2017.11.29 tables) are kept: they are how the game day sees who wrote an item.
A missing item is a 404, a malformed id a 400. Deployable unchanged to AWS.
"""

from __future__ import annotations

import decimal
import json
import os
import re
import threading
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

_ID = re.compile(r"[0-9]{1,38}")

_lock = threading.Lock()
_tables: dict[tuple[str, str, str], Any] = {}  # (region, endpoint, table) -> boto3 Table, reused across calls


def _table(name: str) -> Any:
    region = os.environ.get("AWS_REGION", "")
    key = (region, os.environ.get("AWS_ENDPOINT_URL", ""), name)
    with _lock:
        table = _tables.get(key)
        if table is None:
            table = boto3.session.Session(region_name=region or None).resource("dynamodb").Table(name)
            _tables[key] = table
        return table


def _plain(value: Any) -> Any:
    """DynamoDB values -> JSON-ready values (Decimal -> int or float, sets -> sorted lists)."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(v) for v in value)
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    if hasattr(value, "value") and isinstance(value.value, (bytes, bytearray)):  # boto3 Binary
        return value.value.decode("utf-8", "replace")
    return value


def _response(status: int, body: Any) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body),
    }


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    params = event.get("pathParameters") if isinstance(event, dict) else None
    raw = params.get("itemId") if isinstance(params, dict) else None
    if not isinstance(raw, str) or not _ID.fullmatch(raw):
        shown = "nothing" if raw is None else json.dumps(raw)[:40]
        return _response(400, {"error": f"itemId: expected a non-negative integer, got {shown}"})
    try:
        found = _table(os.environ["tableName"]).get_item(Key={"id": int(raw)}, ConsistentRead=True)
    except KeyError:
        return _response(500, {"error": "function misconfigured: environment variable tableName is not set"})
    except (ClientError, BotoCoreError) as exc:
        return _response(500, {"error": f"read failed: {exc}"})
    item = found.get("Item")
    if item is None:
        return _response(404, {"error": "item not found"})
    return _response(200, _plain(item))
