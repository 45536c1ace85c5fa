"""Route 53 API rate limits as AWS enforces them: token buckets per account.

AWS (since 2026-07-30): one account-wide bucket (burst 50, refill 10 per second) that every
Route 53 API request draws from, and per-operation buckets; GetHealthCheckStatus and
GetHealthCheckLastFailureReason have burst 4, refill 1 per second each. The buckets belong to
the ACCOUNT, shared by every caller in it (every key, user, role and process), so they are keyed
by the account the request authenticates as, never by the caller. A request over a limit gets
HTTP 400 `Throttling` "Rate exceeded", as botocore parses it from Route 53's XML error.

Refill rates are AWS's divided by the time scale (everything else in the cloud runs that much
faster, so a harness polling at its scaled interval meets the limit it would meet on AWS); the
burst sizes are AWS's. The reading hardest on the harness where AWS is unclear: a request that
an operation bucket refuses still spends its account-wide token.

The cloud's own calls (checkers, CloudFormation, the metrics) go to the backends directly and
never reach this: they are not API calls.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from gameday.localcloud.motoglue.patches import declare
from gameday.localcloud.process.context import CloudContext

ACCOUNT_BURST, ACCOUNT_RATE = 50.0, 10.0
OPERATION_LIMITS: dict[str, tuple[float, float]] = {     # operation -> (burst, refill per AWS-second)
    "GetHealthCheckStatus": (4.0, 1.0),
    "GetHealthCheckLastFailureReason": (4.0, 1.0),
}
ERROR_XML = ('<?xml version="1.0"?>\n<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
             "<Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>"
             "<RequestId>{request_id}</RequestId></ErrorResponse>")

CALL_ACTION = declare("moto.route53.responses:Route53.call_action", kind="wrap",
                      signature="(self) -> 'TYPE_RESPONSE'",
                      why="moto has no Route 53 API rate limits; AWS throttles per account with token buckets")


@dataclass
class TokenBucket:
    burst: float
    rate: float              # tokens per local second
    tokens: float
    at: float                # time.monotonic() of `tokens`

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Route53Limits:
    """The buckets of every account, and counts of what was allowed and refused."""

    def __init__(self, time_scale: float) -> None:
        self.time_scale = time_scale
        self.enabled = True
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self.calls: dict[str, int] = {}
        self.throttled: dict[str, int] = {}

    def _bucket(self, account: str, name: str, burst: float, rate_per_aws_s: float, now: float) -> TokenBucket:
        key = (account, name)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(burst, rate_per_aws_s / self.time_scale, burst, now)
            self._buckets[key] = bucket
        return bucket

    def admit(self, account: str, operation: str) -> bool:
        """Whether `operation` by `account` may run now (spends its tokens when it may)."""
        now = time.monotonic()
        with self._lock:
            self.calls[operation] = self.calls.get(operation, 0) + 1
            if not self.enabled:
                return True
            allowed = self._bucket(account, "*", ACCOUNT_BURST, ACCOUNT_RATE, now).take(now)
            limit = OPERATION_LIMITS.get(operation)
            if allowed and limit is not None:
                allowed = self._bucket(account, operation, limit[0], limit[1], now).take(now)
            if not allowed:
                self.throttled[operation] = self.throttled.get(operation, 0) + 1
            return allowed

    def figures(self) -> dict[str, Any]:
        with self._lock:
            return {"enabled": self.enabled, "calls": dict(self.calls), "throttled": dict(self.throttled)}

    def reset_counts(self) -> None:
        with self._lock:
            self.calls.clear()
            self.throttled.clear()


_BOUND: dict[str, Route53Limits] = {}


def _operation(response: Any) -> str:
    try:
        return str(response._get_action())
    except Exception:  # unknown route: let moto answer it as it would
        return ""


def call_action(self: Any) -> Any:
    limits = _BOUND.get("limits")
    if limits is not None:
        operation = _operation(self)
        if operation and not limits.admit(str(self.current_account), operation):
            request_id = self.response_headers.get("x-amzn-RequestId", "") if hasattr(self, "response_headers") else ""
            return 400, {"Content-Type": "text/xml", "status": 400}, ERROR_XML.format(request_id=request_id)
    return CALL_ACTION.original()(self)


def install(ctx: CloudContext) -> Route53Limits:
    """Enforce the buckets on every Route 53 API request (idempotent; before the first request)."""
    limits = _BOUND.get("limits")
    if limits is None or limits.time_scale != ctx.settings.time_scale:
        limits = Route53Limits(ctx.settings.time_scale)
        _BOUND["limits"] = limits
    CALL_ACTION.apply(call_action)
    return limits
