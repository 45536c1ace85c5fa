"""`gameday provision` / `gameday teardown`: the reference backend on AWS with CloudFormation.

On AWS the backend goes into a delegated public zone of the user's (`--hosted-zone-id`), in the
shape real deployments have: a regional custom domain per region and alias A records. Teardown
deletes what provision created and nothing else.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import boto3
import yaml

from gameday.deployment import Deployment, check_writable, consistency_layout, failover_pairs, load_deployment
from gameday.errors import UsageError
from gameday.provision import ProvisionSpec, provision, teardown

# The spec's field names in provision's messages -> the flags a user typed.
_FLAGS = {"regions": "--regions", "routing": "--routing", "table_version": "--table-version",
          "templates": "--templates", "domain": "--domain", "hosted_zone_id": "--hosted-zone-id",
          "health_depth": "--health", "consistency": "--consistency", "witness": "--witness"}


def _as_flags(error: UsageError) -> UsageError:
    """The same one-line error, naming the flag instead of the spec's field."""
    text = str(error)
    field, sep, rest = text.partition(":")
    return UsageError(f"{_FLAGS[field]}:{rest}") if sep and field in _FLAGS else error


def _refuse_endpoint_overrides(command: str) -> None:
    """AWS_ENDPOINT_URL* would send the "AWS" deployment to whatever endpoint it names."""
    from gameday.aws import endpoint_variables

    found = endpoint_variables()
    if found:
        raise UsageError(f"{command}: target aws, but {', '.join(found)} is set in the environment "
                         f"(boto3 would send AWS calls to that endpoint); unset it")


def _spec(regions: list[str], args: argparse.Namespace) -> ProvisionSpec:
    consistency, witness, _ = consistency_layout(getattr(args, "consistency", None), getattr(args, "witness", None),
                                                 regions, args.table_version)
    pairs = getattr(args, "pairs", None)
    if pairs is not None and args.routing != "failover_pairs":
        raise UsageError(f"--pairs: only with --routing failover_pairs, not {args.routing}")
    return ProvisionSpec(regions=regions, table_version=args.table_version, routing=args.routing,
                         pairs=failover_pairs(pairs, regions) if pairs is not None else None,
                         consistency=consistency, witness=witness,
                         templates_dir=args.templates, hosted_zone_id=args.hosted_zone_id,
                         domain=args.domain, zone=args.domain, custom_domain=True,
                         health_depth=getattr(args, "health", "deep"))


def provision_command(args: argparse.Namespace) -> int:
    if not args.domain:
        raise UsageError("--domain: required: the custom domain to deploy, inside the zone --hosted-zone-id "
                         "names (e.g. api.mycompany.com)")
    regions = [r.strip() for r in args.regions.split(",") if r.strip()]
    _refuse_endpoint_overrides("provision")
    check_writable(args.deployment_out, "--deployment-out")
    try:
        description = provision(_spec(regions, args), lambda region: boto3.session.Session(region_name=region))
    except UsageError as exc:
        raise _as_flags(exc) from None
    out = Path(args.deployment_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(description, sort_keys=False))
    print(f"gameday provision: deployment description written to {out}")
    return 0


def teardown_spec(deployment: Deployment) -> ProvisionSpec:
    """What provision made for this description: the same names, the same shape."""
    return ProvisionSpec(regions=list(deployment.region_names), table_name=deployment.table.name,
                         table_version=deployment.table.version, routing=deployment.routing,
                         domain=deployment.domain, hosted_zone_id=deployment.hosted_zone_id,
                         custom_domain=any(r.regional_domain_name for r in deployment.regions))


def teardown_command(args: argparse.Namespace) -> int:
    from gameday.aws import refuse_endpoint_overrides

    deployment = load_deployment(args.deployment)
    if deployment.aws_endpoint_url:
        raise UsageError("--deployment: a local cloud's deployment goes away with `gameday local up`; nothing to tear down")
    refuse_endpoint_overrides(deployment)
    deleted = teardown(teardown_spec(deployment), lambda region: boto3.session.Session(region_name=region))
    print(f"gameday teardown: deleted {', '.join(deleted) or 'nothing'}")
    return 0
