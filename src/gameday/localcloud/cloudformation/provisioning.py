"""Deploys the reference backend into the local cloud through the same provisioning code
that deploys it to AWS (gameday/provision.py), with the local cloud's supplements for
what moto's CloudFormation drops. With settings.tls, the custom-domain shape: health checks
over HTTPS with SNI on the data-plane port, a regional custom domain per region, alias records."""

from __future__ import annotations

from typing import Any

import boto3

from gameday.localcloud.cloudformation.supplements import CfnSupplements
from gameday.localcloud.process.context import CloudContext
from gameday.provision import ProvisionSpec, provision


def provision_local(ctx: CloudContext) -> dict:
    settings = ctx.settings
    host, port = ctx.dns_address
    spec = ProvisionSpec(
        regions=list(settings.regions),
        table_name=settings.table_name,
        table_version=settings.table_version,
        consistency=settings.consistency,
        witness=settings.witness,
        routing=settings.routing,
        pairs=settings.pairs,
        health_depth=settings.health_depth,
        # AWS seconds in the template's terms, run at the cloud's pace like every other AWS timing
        health_max_age_s=ProvisionSpec.health_max_age_s * settings.time_scale,
        domain=settings.domain,
        zone=settings.zone,
        check_type="HTTPS" if settings.tls else "HTTP",
        check_port=ctx.data_plane_port,
        request_interval=settings.request_interval_s,
        failure_threshold=settings.failure_threshold,
        record_ttl_s=settings.record_ttl_s,
        record_type=settings.record_type,
        templates_dir=settings.templates_dir,
        custom_domain=settings.tls,
        region_addresses={spec.name: spec.address for spec in ctx.regions},
        data_plane_port=ctx.data_plane_port,
        aws_endpoint_url=ctx.aws_endpoint_url,
        control_url=f"{ctx.aws_endpoint_url}/_gameday",
        time_scale=settings.time_scale,
        dns_resolver=f"{host}:{port}",
        poll_interval_s=0.02,
        stack_timeout_s=60.0,
    )

    session = SharedClients(boto3.session.Session(aws_access_key_id="gameday-local",
                                                  aws_secret_access_key="gameday-local"))
    return provision(spec, lambda region: session, hooks=CfnSupplements(ctx.aws_endpoint_url, session))


class SharedClients:
    """One boto3 Session for every region, whose clients are built once per (service, region,
    endpoint): building a botocore client costs ~15 ms, and the provisioner and the supplements
    call the same services in the same regions."""

    def __init__(self, session: boto3.session.Session) -> None:
        self._session = session
        self._clients: dict[tuple[Any, ...], Any] = {}

    def client(self, service: str, region_name: str | None = None, endpoint_url: str | None = None) -> Any:
        key = (service, region_name, endpoint_url)
        if key not in self._clients:
            self._clients[key] = self._session.client(service, region_name=region_name, endpoint_url=endpoint_url)
        return self._clients[key]
