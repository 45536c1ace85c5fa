"""`gameday provision` / `gameday teardown`: the reference backend on AWS with CloudFormation."""

from __future__ import annotations

import argparse
from pathlib import Path

import boto3
import yaml

from gameday.errors import UsageError
from gameday.provision import ProvisionSpec, provision, teardown


def _spec(regions: list[str], args: argparse.Namespace) -> ProvisionSpec:
    spec = ProvisionSpec(regions=regions, table_version=args.table_version, routing=args.routing,
                         templates_dir=args.templates, hosted_zone_id=args.hosted_zone_id)
    if args.domain:
        spec.domain = args.domain
        spec.zone = args.domain.split(".", 1)[1] if "." in args.domain else args.domain
    return spec


def provision_command(args: argparse.Namespace) -> int:
    regions = [r.strip() for r in args.regions.split(",") if r.strip()]
    description = provision(_spec(regions, args), lambda region: boto3.session.Session(region_name=region))
    out = Path(args.deployment_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(description, sort_keys=False))
    print(f"gameday provision: deployment description written to {out}")
    return 0


def teardown_command(args: argparse.Namespace) -> int:
    from gameday.deployment import load_deployment

    deployment = load_deployment(args.deployment)
    if deployment.aws_endpoint_url:
        raise UsageError("--deployment: a local cloud's deployment goes away with `gameday local up`; nothing to tear down")
    spec = ProvisionSpec(regions=list(deployment.region_names), table_name=deployment.table.name,
                         table_version=deployment.table.version, routing=deployment.routing,
                         domain=deployment.domain, hosted_zone_id=deployment.hosted_zone_id)
    deleted = teardown(spec, lambda region: boto3.session.Session(region_name=region))
    print(f"gameday teardown: deleted {', '.join(deleted) or 'nothing'}")
    return 0
