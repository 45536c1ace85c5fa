"""One Route 53 API budget per account, shared by every process of a run.

Why: Route 53 limits API requests per ACCOUNT with token buckets (account-wide burst 50, refill
10/s; GetHealthCheckStatus and GetHealthCheckLastFailureReason burst 4, refill 1/s each), shared
by every caller in it. Each xdist worker polling its own health check at one request a second is
throttled within seconds, and botocore's retry backoff (seconds, unscaled) would then stretch a
30-second detection into minutes without saying so. So the harness paces itself below the limits,
with one bucket set that every worker and process draws from, and handles Throttling itself.

Choice: a token bucket in a small JSON file, read and updated under `fcntl.flock`, rather than a
coordinator process: nothing to start, stop or find, it survives a killed worker, and a lock held
for a few microseconds per call costs nothing beside an HTTP request. The file lives in the
user's temporary directory, named after the endpoint (AWS itself when there is none): every
process that talks to the same account from this machine (every worker of a run, a second run,
`gameday` commands) shares it, which is the per-account sharing AWS enforces, and a leftover file
only holds a few tokens and counts. Two teams on other machines in one account still share AWS's
1/s: that is what the Throttling handling (count, back off within the wait's budget) is for.

The harness keeps a margin below AWS's numbers (HARNESS_SHARE of each refill rate, burst minus
BURST_MARGIN) so that requests bunched up by network jitter still fit AWS's buckets. Rates are
per AWS-second, divided by the time scale, as the local cloud enforces them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gameday.errors import Category, ScenarioError

ACCOUNT_BURST, ACCOUNT_RATE = 50.0, 10.0
OPERATION_LIMITS: dict[str, tuple[float, float]] = {     # operation -> (burst, refill per AWS-second)
    "GetHealthCheckStatus": (4.0, 1.0),
    "GetHealthCheckLastFailureReason": (4.0, 1.0),
}
HARNESS_SHARE = 0.8              # of each refill rate
BURST_MARGIN = 2.0               # tokens kept back from each burst
THROTTLING_CODES = frozenset({"Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded",
                              "TooManyRequestsException", "PriorRequestNotComplete"})
#: Operations whose Throttling the harness handles itself (botocore must not retry them blindly).
SELF_RETRIED = frozenset(OPERATION_LIMITS)
DEFAULT_MAX_WAIT_AWS_S = 60.0    # the longest one call waits for a token outside a wait's own budget



def _read_state(handle: Any) -> dict[str, Any]:
    """The shared state in a locked file (empty or unreadable: a fresh one)."""
    handle.seek(0)
    text = handle.read()
    try:
        state = json.loads(text) if text.strip() else {}
    except ValueError:
        return {}
    return state if isinstance(state, dict) else {}

class ApiBudgetExhausted(ScenarioError):
    """No token could be had before the wait's deadline."""

    category = Category.DETECTION_TIMEOUT


def is_throttling(error: BaseException) -> bool:
    response = getattr(error, "response", None)
    code = (response or {}).get("Error", {}).get("Code", "") if isinstance(response, dict) else ""
    return code in THROTTLING_CODES


@dataclass
class Counts:
    calls: int = 0
    throttled: int = 0
    waited_s: float = 0.0        # time spent waiting for tokens


def default_path(endpoint_url: str | None) -> Path:
    key = hashlib.sha256((endpoint_url or "aws").encode()).hexdigest()[:16]
    directory = Path(tempfile.gettempdir()) / f"gameday-api-budget-{os.getuid()}"
    directory.mkdir(mode=0o700, exist_ok=True)
    return directory / f"route53-{key}.json"


class SharedBudget:
    """The account's Route 53 buckets, kept in `path` and shared under flock."""

    def __init__(self, path: Path, time_scale: float) -> None:
        self.path = Path(path)
        self.time_scale = time_scale
        self.counts = Counts()                    # this process's
        self._lock = threading.Lock()
        self._local = threading.local()
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def limits(self, operation: str) -> list[tuple[str, float, float]]:
        """[(bucket, burst, refill per local second)] an operation draws from, with the harness's margin."""
        out = [("*", ACCOUNT_BURST - BURST_MARGIN, ACCOUNT_RATE * HARNESS_SHARE / self.time_scale)]
        if operation in OPERATION_LIMITS:
            burst, rate = OPERATION_LIMITS[operation]
            out.append((operation, max(1.0, burst - BURST_MARGIN), rate * HARNESS_SHARE / self.time_scale))
        return out

    @contextlib.contextmanager
    def deadline(self, at_monotonic: float) -> Iterator[None]:
        """Calls on this thread wait for a token no later than `at_monotonic` (a wait's budget)."""
        previous = getattr(self._local, "deadline", None)
        self._local.deadline = at_monotonic
        try:
            yield
        finally:
            self._local.deadline = previous

    def _try(self, operation: str) -> float:
        """Take one token from each bucket and return 0, or take nothing and return the seconds until
        all of them hold one."""
        now = time.time()
        with open(self.path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                state = _read_state(handle)
                buckets = state.setdefault("buckets", {})
                wait = 0.0
                refreshed = {}
                for name, burst, rate in self.limits(operation):
                    tokens, at = buckets.get(name, [burst, now])
                    tokens = min(burst, float(tokens) + max(0.0, now - float(at)) * rate)
                    refreshed[name] = tokens
                    if tokens < 1.0:
                        wait = max(wait, (1.0 - tokens) / rate)
                if wait == 0.0:
                    for name, tokens in refreshed.items():
                        buckets[name] = [tokens - 1.0, now]
                    state["calls"] = int(state.get("calls", 0)) + 1
                    handle.seek(0)
                    handle.truncate()
                    handle.write(json.dumps(state))
                    handle.flush()
                return wait
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def acquire(self, operation: str) -> None:
        """Block until the account's buckets allow `operation` (ApiBudgetExhausted past the deadline)."""
        deadline = getattr(self._local, "deadline", None)
        if deadline is None:
            deadline = time.monotonic() + DEFAULT_MAX_WAIT_AWS_S * self.time_scale + 1.0
        began = time.monotonic()
        while True:
            wait = self._try(operation)
            if wait == 0.0:
                break
            now = time.monotonic()
            if now + wait > deadline:
                raise ApiBudgetExhausted(f"Route 53 API budget: no {operation} token before the wait's deadline "
                                         f"(next in {wait:.3f} s)")
            time.sleep(wait)
        with self._lock:
            self.counts.calls += 1
            self.counts.waited_s += time.monotonic() - began

    def record_throttled(self) -> None:
        with self._lock:
            self.counts.throttled += 1
        with contextlib.suppress(OSError), open(self.path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                state = _read_state(handle)
                state["throttled"] = int(state.get("throttled", 0)) + 1
                handle.seek(0)
                handle.truncate()
                handle.write(json.dumps(state))
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def snapshot(self) -> Counts:
        with self._lock:
            return Counts(self.counts.calls, self.counts.throttled, self.counts.waited_s)

    def shared_counts(self) -> dict[str, int]:
        """Calls and Throttling errors of every process that used this file."""
        try:
            state = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}
        return {"calls": int(state.get("calls", 0)), "throttled": int(state.get("throttled", 0))}


def install(client: Any, budget: SharedBudget) -> SharedBudget:
    """Route every Route 53 request of `client` through `budget`, count Throttling errors, and stop
    botocore retrying Throttling of the operations the harness retries itself (its backoff is in
    real seconds, whatever the time scale). Idempotent per client: the first budget stays."""
    installed = getattr(client, "_gameday_api_budget", None)
    if isinstance(installed, SharedBudget):
        return installed
    events = getattr(getattr(client, "meta", None), "events", None)
    if events is None:          # a stand-in client (tests): nothing to route
        return budget

    def before_send(event_name: str = "", **_: Any) -> None:
        budget.acquire(event_name.rsplit(".", 1)[-1])
        # a non-None value would replace the HTTP response

    def needs_retry(response: Any = None, operation: Any = None, **_: Any) -> None:
        if not response:
            return None
        parsed = response[1] if isinstance(response, tuple) and len(response) > 1 else {}
        code = (parsed or {}).get("Error", {}).get("Code", "")
        if code in THROTTLING_CODES:
            budget.record_throttled()
            name = getattr(operation, "name", "")
            if name in SELF_RETRIED:
                from botocore.exceptions import ClientError

                raise ClientError(parsed, name)
        return None

    events.register("before-send.route53", before_send, unique_id="gameday-api-budget-send")
    events.register_first("needs-retry.route53", needs_retry, unique_id="gameday-api-budget-retry")
    client._gameday_api_budget = budget
    return budget


def for_client(client: Any, time_scale: float) -> SharedBudget:
    """The shared budget of the account behind `client`, installed on it."""
    installed = getattr(client, "_gameday_api_budget", None)
    if isinstance(installed, SharedBudget):
        return installed
    endpoint = getattr(getattr(client, "meta", None), "endpoint_url", None)
    endpoint = None if endpoint and "amazonaws.com" in endpoint else endpoint
    return install(client, SharedBudget(default_path(endpoint), time_scale))
