"""The client of the global domain, as the traffic and the game days use it.

It is the deployment's pinned HTTP client (gameday.observe.pinned_http): DNS through the
deployment's resolver honouring the TTL, the connection pinned to the resolved address with the
domain kept for SNI, Host and the certificate check, the serving region read from that address.
One implementation serves the global domain, each region's api_url and the faults' checks.
"""

from __future__ import annotations

from gameday.observe.pinned_http import (
    DEFAULT_TIMEOUT,
    REGION_HEADER,
    GlobalRequestError,
    GlobalResponse,
    http_session,
)
from gameday.observe.pinned_http import PinnedClient as GlobalClient

__all__ = ["DEFAULT_TIMEOUT", "REGION_HEADER", "GlobalClient", "GlobalRequestError", "GlobalResponse",
           "http_session"]
