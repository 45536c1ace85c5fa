"""API Gateway regional custom domain names: what the data plane and TLS need from them.

moto stores DomainName and BasePathMapping but checks nothing and serves nothing. Here:
- CreateDomainName for a REGIONAL endpoint needs a RegionalCertificateArn that exists in that
  region's ACM, is ISSUED, and covers the name (BadRequestException otherwise, as API Gateway);
- a request whose Host is a custom domain of the listener's region goes through the domain's
  base path mappings to a REST API stage, the path without the base path (and without a stage:
  a mapping with a stage takes the path as the API's resource path);
- the TLS front serves the domain's ACM certificate for its SNI.
Everything is read from moto's backend on every request, so domains made later are served.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moto.apigateway.exceptions import BadRequestException

from gameday.localcloud.motoglue import access as moto_access
from gameday.localcloud.motoglue.patches import declare
from gameday.localcloud.process.context import ACCOUNT_ID
from gameday.localcloud.tls import acm
from gameday.localcloud.tls.ca import IssuedCertificate

CREATE_DOMAIN_NAME = declare(
    "moto.apigateway.models:APIGatewayBackend.create_domain_name", kind="wrap",
    signature="(self, domain_name: str, certificate_name: str, tags: list[dict[str, str]], certificate_arn: str, "
              "certificate_body: str, certificate_private_key: str, certificate_chain: str, "
              "regional_certificate_name: str, regional_certificate_arn: str, endpoint_configuration: Any, "
              "security_policy: str) -> moto.apigateway.models.DomainName",
    why="moto accepts any certificate ARN; API Gateway needs an ISSUED ACM certificate in the region "
        "that covers the name")


@dataclass(frozen=True)
class Routed:
    api: Any
    stage: Any
    path_segments: list[str]


def _endpoint_types(endpoint_configuration: Any) -> list[str]:
    if isinstance(endpoint_configuration, dict):
        return [str(t).upper() for t in endpoint_configuration.get("types") or endpoint_configuration.get("Types") or []]
    return []


def _create_domain_name(self: Any, domain_name: str, certificate_name: str, tags: Any, certificate_arn: str,  # noqa: PLR0917 (moto's signature)
                        certificate_body: str, certificate_private_key: str, certificate_chain: str,
                        regional_certificate_name: str, regional_certificate_arn: str,
                        endpoint_configuration: Any, security_policy: str) -> Any:
    regional = "REGIONAL" in _endpoint_types(endpoint_configuration) or bool(regional_certificate_arn)
    if regional:
        check_regional_certificate(self.region_name, domain_name, regional_certificate_arn)
    return CREATE_DOMAIN_NAME.original()(self, domain_name, certificate_name, tags, certificate_arn,
                                         certificate_body, certificate_private_key, certificate_chain,
                                         regional_certificate_name, regional_certificate_arn,
                                         endpoint_configuration, security_policy)


def check_regional_certificate(region: str, domain_name: str, arn: str | None) -> None:
    """BadRequestException unless `arn` is an ISSUED certificate in `region` covering the name."""
    if not arn:
        raise BadRequestException("A regional certificate ARN (regionalCertificateArn) is required "
                                  "for a REGIONAL domain name")
    found = acm.certificate(region, arn) if f":acm:{region}:" in arn else None
    if found is None:
        raise BadRequestException(f"Invalid certificate ARN: {arn}. Certificate must be in '{region}'.")
    bundle, issued = found
    if str(bundle.status) != "ISSUED":
        raise BadRequestException(f"Certificate {arn} in account {ACCOUNT_ID} not yet issued")
    if not acm.covers(issued.names, domain_name):
        raise BadRequestException(f"The certificate {arn} is not valid for the domain name {domain_name}")


def install() -> None:
    CREATE_DOMAIN_NAME.apply(_create_domain_name)


def domain(region: str, host: str) -> Any:
    """moto's DomainName for `host` in that region, or None."""
    return moto_access.apigateway(region).domain_names.get(host.rstrip(".").lower())


def certificate_for(region: str, host: str) -> IssuedCertificate | None:
    """The ACM certificate that the region's custom domain `host` serves (TLS front)."""
    found = domain(region, host)
    if found is None or not found.regional_certificate_arn:
        return None
    material = acm.certificate(region, found.regional_certificate_arn)
    return material[1] if material is not None else None


def route(region: str, host: str, segments: list[str]) -> Routed | None:
    """The API stage a custom-domain request goes to, by its base path mappings; None: 403."""
    if domain(region, host) is None:
        return None
    backend = moto_access.apigateway(region)
    mappings = dict(backend.base_path_mappings.get(host.rstrip(".").lower()) or {})
    chosen, rest = None, segments
    if segments and segments[0] in mappings and segments[0] != "(none)":
        chosen, rest = mappings[segments[0]], segments[1:]
    elif "(none)" in mappings:
        chosen = mappings["(none)"]
    if chosen is None:
        return None
    api = backend.apis.get(chosen.rest_api_id)
    if api is None:
        return None
    if chosen.stage:
        stage = api.stages.get(chosen.stage)
    else:                                 # a mapping to every stage: the path names the stage
        stage = api.stages.get(rest[0]) if rest else None
        rest = rest[1:]
    if stage is None:
        return None
    return Routed(api, stage, list(rest))
