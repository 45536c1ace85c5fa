"""ACM in the local cloud: certificates that the local CA really signed.

moto's RequestCertificate makes a self-signed certificate that sits in PENDING_VALIDATION for 60
real seconds; a client verifying TLS against the cloud's bundle could never trust it. Here a
requested certificate (API or `AWS::CertificateManager::Certificate`) is issued by the cloud's CA
for the requested names and is ISSUED at once: the cloud's hosted zone is authoritative, so DNS
validation has nothing to wait for. ImportCertificate is moto's own (a user may import a
certificate the CA signed). API Gateway custom domains serve what ACM holds for their
RegionalCertificateArn.
"""

from __future__ import annotations

from typing import Any

from moto.backends import get_backend

from gameday.localcloud.motoglue.patches import declare
from gameday.localcloud.process.context import ACCOUNT_ID
from gameday.localcloud.tls.ca import IssuedCertificate, LocalCA

REQUEST_CERTIFICATE = declare(
    "moto.acm.models:AWSCertificateManagerBackend.request_certificate", kind="wrap",
    signature="(self, domain_name: str, idempotency_token: str, subject_alt_names: list[str], "
              "tags: list[dict[str, str]], cert_authority_arn: str | None = None, "
              "cert_options: dict[str, typing.Any] | None = None) -> str",
    why="moto's requested certificates are self-signed and pending for 60 s; issue them from the local CA")
CERT_BUNDLE = declare(
    "moto.acm.models:CertBundle", kind="call",
    why="an ACM certificate holding material the local CA signed (type AMAZON_ISSUED, ISSUED)")

_BOUND: dict[str, LocalCA] = {}


def acm_backend(region: str) -> Any:
    """moto's ACM backend for a region. (motoglue/access.py has no ACM accessor yet; this is
    the only place that reaches it.)"""
    return get_backend("acm")[ACCOUNT_ID][region]


def bind(ca: LocalCA) -> None:
    _BOUND["ca"] = ca
    REQUEST_CERTIFICATE.apply(_request_certificate)


def bound_ca() -> LocalCA | None:
    return _BOUND.get("ca")


def issue_into_acm(region: str, domain_name: str, sans: list[str] | None = None,
                   arn: str | None = None) -> str:
    """An ISSUED ACM certificate for the names, signed by the local CA; returns its ARN."""
    ca = _BOUND.get("ca")
    if ca is None:
        raise RuntimeError("the local CA is not running (start the cloud with --tls)")
    issued = ca.issue([domain_name, *(sans or [])])
    bundle_class = CERT_BUNDLE.original()
    bundle = bundle_class(account_id=ACCOUNT_ID, certificate=issued.certificate, private_key=issued.private_key,
                          chain=None, region=region, arn=arn, cert_type="AMAZON_ISSUED", cert_status="ISSUED")
    bundle.chain = issued.chain   # the CA that signed it, not moto's stand-in for Amazon's roots
    acm_backend(region)._certificates[bundle.arn] = bundle
    return str(bundle.arn)


def _request_certificate(self: Any, domain_name: str, idempotency_token: str, subject_alt_names: list[str],  # noqa: PLR0917
                         tags: list[dict[str, str]], cert_authority_arn: str | None = None,
                         cert_options: dict[str, Any] | None = None) -> str:
    arn = REQUEST_CERTIFICATE.original()(self, domain_name, idempotency_token, subject_alt_names, tags,
                                         cert_authority_arn, cert_options)
    if _BOUND.get("ca") is None or cert_authority_arn is not None:
        return str(arn)
    old = self._certificates[arn]
    if old.type != "AMAZON_ISSUED" or getattr(old, "_gameday_issued", False):
        return str(arn)      # an idempotent repeat of an earlier request
    issue_into_acm(self.region_name, domain_name, list(subject_alt_names or []), arn=arn)
    new = self._certificates[arn]
    new.tags = old.tags
    new.cert_options = old.cert_options
    new._gameday_issued = True
    return str(arn)


def certificate(region: str, arn: str) -> tuple[Any, IssuedCertificate] | None:
    """(moto's CertBundle, its material) for an ARN in that region's ACM; None if there is none."""
    bundle = acm_backend(region)._certificates.get(arn)
    if bundle is None:
        return None
    chain = bundle.chain if isinstance(bundle.chain, bytes) else str(bundle.chain).encode()
    return bundle, IssuedCertificate(tuple(bundle.sans or [bundle.common_name]), bundle.cert, bundle.key, chain)


def covers(names: list[str] | tuple[str, ...], host: str) -> bool:
    """Whether a certificate for `names` is valid for `host` (one-label wildcards, as TLS)."""
    host = host.rstrip(".").lower()
    for raw in names:
        name = str(raw).rstrip(".").lower()
        if name == host:
            return True
        if name.startswith("*.") and host.count(".") >= 2 and host.split(".", 1)[1] == name[2:]:
            return True
    return False
