"""Health (GET /health): answer with the status code held in the environment variable `status`.

As in the article, flipping `status` to 404 with UpdateFunctionConfiguration is how a game day
makes Route 53 see the region as down. Absent means 200; a value that is not an HTTP status
code is a 500 (the function is misconfigured, which a health check should notice).
"""

from __future__ import annotations

import json
import os
from typing import Any


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    raw = os.environ.get("status", "200").strip()
    try:
        status = int(raw)
    except ValueError:
        status = 0
    body: Any = "all done"
    if not 100 <= status <= 599:
        status, body = 500, {"error": "status: environment value is not an HTTP status code"}
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body),
    }
