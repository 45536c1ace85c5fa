"""PutItem (POST /item): validate the body strictly, write the item, stamp the writing region.

Bad input of any kind is a 400 naming the field, never a 500: the game day must be able to tell
"the region is down" from "the client sent junk". The item carries `written_region` (AWS_REGION)
because 2019.11.21 global tables hide aws:rep:updateregion. On a multi-Region strongly consistent
table a write that meets another region's write of the item is a 409 (not written; retry-safe).
Deployable unchanged to AWS: boto3 with no explicit endpoint (AWS_ENDPOINT_URL, if set, comes
from the environment).
"""

from __future__ import annotations

import base64
import json
import os
import threading
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

MAX_ID = 10**38 - 1  # DynamoDB numbers carry 38 digits of precision
MAX_ITEM_BYTES = 400 * 1024  # DynamoDB's item size limit: attribute names and values, UTF-8

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


def _response(status: int, body: Any) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body),
    }


def _bad(message: str) -> dict[str, Any]:
    return _response(400, {"error": message})


def _parse(event: Any) -> tuple[dict[str, Any] | None, str | None]:
    """(item fields, None) or (None, error message)."""
    raw = event.get("body") if isinstance(event, dict) else None
    if raw is None or raw == "":
        return None, "body: expected a JSON object with id and name, got no body"
    if isinstance(event, dict) and event.get("isBase64Encoded"):
        try:
            decoded = base64.b64decode(raw, validate=True)
        except (ValueError, TypeError):
            return None, "body: isBase64Encoded is set but the body is not valid base64"
        try:
            raw = decoded.decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, f"body: not UTF-8 (invalid byte at position {exc.start})"
    if isinstance(raw, (bytes, bytearray)):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, f"body: not UTF-8 (invalid byte at position {exc.start})"
    try:
        body = json.loads(raw)
    except RecursionError:
        return None, "body: JSON nested too deeply"
    except (TypeError, ValueError):
        return None, "body: not valid JSON"
    if not isinstance(body, dict):
        return None, "body: expected a JSON object with id and name"
    if "id" not in body:
        return None, "id: missing (expected a non-negative integer)"
    item_id = body["id"]
    if type(item_id) is not int or item_id < 0 or item_id > MAX_ID:  # bool is an int subclass: rejected
        return None, f"id: expected a non-negative integer of at most 38 digits, got {json.dumps(item_id)[:40]}"
    if "name" not in body:
        return None, "name: missing (expected a string)"
    name = body["name"]
    if not isinstance(name, str):
        return None, f"name: expected a string, got {json.dumps(name)[:40]}"
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate (JSON "\\ud800") is valid JSON, not a Unicode string
        return None, f"name: not a valid Unicode string (lone surrogate at position {exc.start})"
    size = len(encoded) + len("name") + len("id") + 21 + len("written_region") + 32
    if size > MAX_ITEM_BYTES:
        return None, f"name: the item would be about {size} bytes, over DynamoDB's 400 KB item limit"
    return {"id": item_id, "name": name}, None


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    fields, error = _parse(event)
    if fields is None:
        return _bad(error or "body: not understood")
    region = os.environ.get("AWS_REGION", "")
    item = {**fields, "written_region": region}
    try:
        _table(os.environ["tableName"]).put_item(Item=item)
    except KeyError:
        return _response(500, {"error": "function misconfigured: environment variable tableName is not set"})
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code == "ValidationException":  # the item, not the region
            return _bad(f"item: {exc.response['Error'].get('Message', 'rejected by DynamoDB')}")
        if code == "ReplicatedWriteConflictException":  # MRSC: another region is writing this item
            return _response(409, {"error": "conflict: the item is being written in another region; retry"})
        return _response(500, {"error": f"write failed: {exc}"})
    except BotoCoreError as exc:
        return _response(500, {"error": f"write failed: {exc}"})
    return _response(200, {})   # what DocumentClient.put returns: nothing that names the region
