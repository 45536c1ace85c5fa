"""TLS in front of each region's data plane, the certificate picked by SNI as API Gateway does.

- SNI `*.execute-api.{region}.amazonaws.com` (the default API host, the regional domain name
  `d-...`): the region's `*.execute-api` certificate, as AWS presents for those hosts.
- SNI naming an API Gateway custom domain of that region: the ACM certificate of its
  RegionalCertificateArn (looked up on every handshake, so domains made after start are served).
- Any other SNI: the region's `*.execute-api` certificate, which a verifying client rejects for
  that name (what a CNAME straight to an execute-api host gets on AWS).
- No SNI at all: the handshake fails. API Gateway's regional endpoints need SNI, and a client
  that connects to an IP address sends none.
"""

from __future__ import annotations

import hashlib
import ssl
import threading
from collections.abc import Callable

from gameday.localcloud.tls.ca import IssuedCertificate, LocalCA, server_context

# (region, server name) -> the custom domain's certificate, or None when the name is no custom domain there
CustomCertificate = Callable[[str, str], "IssuedCertificate | None"]


def execute_api_names(region: str) -> list[str]:
    return [f"*.execute-api.{region}.amazonaws.com"]


class TlsFront:
    def __init__(self, ca: LocalCA, regions: list[str], custom: CustomCertificate) -> None:
        self._ca = ca
        self._custom = custom
        self._lock = threading.Lock()
        self._by_material: dict[str, ssl.SSLContext] = {}
        self._default: dict[str, ssl.SSLContext] = {}
        for region in regions:
            issued = ca.issue(execute_api_names(region))
            context = self._context_for(issued, f"execute-api-{region}")
            context.sni_callback = self._sni(region)
            self._default[region] = context

    def context(self, region: str) -> ssl.SSLContext:
        """The server context for a region's listener (its SNI callback switches certificates)."""
        return self._default[region]

    def _context_for(self, issued: IssuedCertificate, stem: str) -> ssl.SSLContext:
        digest = hashlib.sha256(issued.certificate).hexdigest()[:16]
        with self._lock:
            found = self._by_material.get(digest)
            if found is None:
                cert_path, key_path = self._ca.write(issued, f"{stem}-{digest}")
                found = server_context(cert_path, key_path)
                self._by_material[digest] = found
            return found

    def _sni(self, region: str) -> Callable[[ssl.SSLObject, str | None, ssl.SSLContext], int | None]:
        suffix = f".execute-api.{region}.amazonaws.com"

        def choose(sslobj: ssl.SSLObject, server_name: str | None, _context: ssl.SSLContext) -> int | None:
            if not server_name:
                return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
            name = server_name.rstrip(".").lower()
            if name.endswith(suffix):
                return None                      # the default context: *.execute-api.{region}
            try:
                issued = self._custom(region, name)
            except Exception:                    # a lookup bug must not kill the handshake thread
                issued = None
            if issued is not None:
                sslobj.context = self._context_for(issued, f"custom-{name}")
            return None

        return choose
