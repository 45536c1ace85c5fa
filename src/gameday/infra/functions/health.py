"""Health (GET /health): the status code held in the environment variable `status`, and, when
`HEALTH_DEPTH` is `deep`, proof that this region's table takes writes.

As in the article, flipping `status` to 404 with UpdateFunctionConfiguration is how a game day
makes Route 53 see the region as down: a non-2xx `status` is answered as is, without touching the
table. Absent means 200; a value that is not an HTTP status code is a 500 (the function is
misconfigured, which a health check should notice).

Why deep: a check that only reads its environment stays green while the region's writes fail
(the blind spot). The deep check writes a reserved item of its own region and reads it back
strongly consistently; a failure is a 503 naming the step and the error code only. The reserved
key is a negative number (the region name's bytes as an integer, negated): the API accepts only
non-negative ids, so no client item can clash, and each region has its own item, so the copies a
global table replicates everywhere never conflict. `HEALTH_DEPTH` absent or `shallow`: the
article's check.

About 16 Route 53 checkers probe every region: a deep result is reused for `HEALTH_MAX_AGE_S`
seconds (default 0: every probe checks), so the checkers do not each write. A failure then shows
at most that much later than it began.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from typing import Any

DEPTHS = ("shallow", "deep")
HEALTH_ITEM_NAME = "__gameday_health__#{region}"

_lock = threading.Lock()
_tables: dict[tuple[str, str, str], Any] = {}  # (region, endpoint, table) -> boto3 Table, reused across calls
_check_lock = threading.Lock()
_checked: dict[tuple[str, str, str], tuple[float, str | None]] = {}  # same key -> (monotonic time, reason)


def health_item_id(region: str) -> int:
    """The region's reserved item id: negative, so outside every id the API accepts."""
    return -int.from_bytes(region.encode("utf-8"), "big") or -1


def _table(name: str, region: str) -> Any:
    import boto3  # only the deep check needs it

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


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return str(code or type(exc).__name__)


def deep_check() -> str | None:
    """None when this region's table took a write and gave it back; else a short reason."""
    name = os.environ.get("tableName")
    if not name:
        return "function misconfigured: environment variable tableName is not set"
    region = os.environ.get("AWS_REGION", "")
    item_id, token = health_item_id(region), uuid.uuid4().hex
    table = _table(name, region)
    try:
        table.put_item(Item={"id": item_id, "name": HEALTH_ITEM_NAME.format(region=region),
                             "token": token, "written_region": region, "checked_at": str(time.time())})
    except Exception as exc:  # any failure of the write path is what this check reports
        return f"write to the table failed ({_error_code(exc)})"
    try:
        found = table.get_item(Key={"id": item_id}, ConsistentRead=True).get("Item") or {}
    except Exception as exc:
        return f"read back from the table failed ({_error_code(exc)})"
    if found.get("token") != token:
        return "read back from the table did not return the item just written"
    return None


def recent_deep_check(max_age_s: float) -> str | None:
    """deep_check(), or its result if one was made less than `max_age_s` ago; concurrent probes
    wait for the one in progress instead of writing too."""
    key = (os.environ.get("AWS_REGION", ""), os.environ.get("AWS_ENDPOINT_URL", ""), os.environ.get("tableName", ""))
    with _check_lock:
        last = _checked.get(key)
        if last is not None and time.monotonic() - last[0] < max_age_s:
            return last[1]
        reason = deep_check()
        _checked[key] = (time.monotonic(), reason)
        return reason


def _max_age() -> float | None:
    try:
        value = float(os.environ.get("HEALTH_MAX_AGE_S", "0").strip() or "0")
    except ValueError:
        return None
    return value if 0 <= value <= 3600 else None


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    raw = os.environ.get("status", "200").strip()
    try:
        status = int(raw)
    except ValueError:
        status = 0
    if not 100 <= status <= 599:
        return _response(500, {"error": "status: environment value is not an HTTP status code"})
    depth = os.environ.get("HEALTH_DEPTH", "shallow").strip().lower() or "shallow"
    if depth not in DEPTHS:
        return _response(500, {"error": f"HEALTH_DEPTH: expected one of {', '.join(DEPTHS)}"})
    max_age = _max_age()
    if max_age is None:
        return _response(500, {"error": "HEALTH_MAX_AGE_S: expected a number of seconds from 0 to 3600"})
    if depth == "deep" and 200 <= status < 300:
        reason = recent_deep_check(max_age)
        if reason is not None:
            return _response(503, {"error": f"deep health check: {reason}"})
    return _response(status, "all done")
