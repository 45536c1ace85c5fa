"""The local cloud's ground truth: every transition it made (checker results, health status, DNS
answers, replication, Lambda configuration) with its exact time, read over HTTP from the
description's `control_url`.

Read from the description, not from the process that started the cloud, so a run attached with
`--deployment` to a cloud that `gameday local up` started sees it too. AWS has no such record:
there `control_url` is absent and every read gives nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from gameday.lazy import lazy_module

if TYPE_CHECKING:
    import requests
else:
    requests = lazy_module("requests")


CONNECT_RETRY_S = 5.0
HTTP_TIMEOUT_S = (3.05, 10.0)


class GroundTruth:
    """Reads `GET {control_url}/events?since=SEQ&kind=KIND` -> {"events": [...], "last_seq": N}."""

    def __init__(self, control_url: str | None) -> None:
        self.control_url = control_url.rstrip("/") if control_url else None

    @property
    def available(self) -> bool:
        return self.control_url is not None

    def events(self, kind: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        """The recorded events after sequence number `since` (of one kind, if given); [] on AWS."""
        if self.control_url is None:
            return []
        params: dict[str, Any] = {"since": since}
        if kind:
            params["kind"] = kind
        url = f"{self.control_url}/events"

        def get() -> list[dict[str, Any]]:
            with requests.get(url, params=params, timeout=HTTP_TIMEOUT_S) as response:
                response.raise_for_status()
                return list(response.json()["events"])

        retrying = Retrying(stop=stop_after_delay(CONNECT_RETRY_S), wait=wait_fixed(0.1),
                            retry=retry_if_exception_type(requests.ConnectionError), reraise=True)
        return retrying(get)
