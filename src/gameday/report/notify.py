"""The webhook a scheduled run posts when it ends: the summary (verdicts, figures, where the report
is), as JSON. A failed delivery is reported and never fails the run: the game day's verdict is
already on disk, and a chat outage must not turn a green game day red.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from gameday.errors import UsageError

TIMEOUT_S = (3.05, 10.0)
ATTEMPTS = 3


def check_url(url: str, option: str = "--notify") -> str:
    """The URL if it is http(s) with a host; UsageError naming the option otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{option}: expected an http:// or https:// URL, got {url!r}")
    return url


def _retryable(error: BaseException) -> bool:
    if isinstance(error, requests.HTTPError):
        return error.response is not None and error.response.status_code >= 500
    return isinstance(error, (requests.ConnectionError, requests.Timeout))


def notify(url: str, payload: Mapping[str, Any], *, say: Callable[[str], None] = print,
           attempts: int = ATTEMPTS, wait_s: float = 0.5) -> bool:
    """POST `payload` to `url` (a few tries on connection errors and 5xx); True when delivered."""
    body = json.dumps(payload, default=str).encode()

    def post() -> int:
        with requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=TIMEOUT_S) as got:
            got.raise_for_status()
            return got.status_code

    retrying = Retrying(stop=stop_after_attempt(attempts), wait=wait_exponential(multiplier=wait_s, max=5),
                        retry=retry_if_exception(_retryable), reraise=True)
    try:
        status = retrying(post)
    except requests.RequestException as exc:
        response = getattr(exc, "response", None)
        reason = f"HTTP {response.status_code}" if response is not None else type(exc).__name__
        say(f"notify: could not deliver the summary to {_safe(url)}: {reason} (the run's result stands)")
        return False
    say(f"notify: summary delivered to {_safe(url)} (HTTP {status})")
    return True


def _safe(url: str) -> str:
    """The URL without its query and credentials (webhook tokens often travel there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
