"""The hosted zone provision is given (`hosted_zone_id`, required on AWS), against the local cloud's
AWS endpoint: it must exist, be public and hold the domain, and a CNAME must not land at its apex;
each refusal is one line naming the field, before any change. Teardown deletes the zone stack only
when provision made that zone: a zone of the user's stays."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import yaml

from gameday.cli.provision import teardown_spec
from gameday.deployment import parse_deployment
from gameday.errors import UsageError
from gameday.localcloud.cloudformation.supplements import CfnSupplements
from gameday.localcloud.process.context import CloudContext
from gameday.provision import provision, teardown
from tests.localcloud.test_provision import client, make_spec, session, world
from tests.localcloud.test_provision import rig as provision_rig

REGIONS = ["eu-west-1", "us-east-1"]
rig = provision_rig   # the same in-process endpoint, data plane and tables, one per module


def no_changes(rig: CloudContext, **overrides: Any) -> str:
    """Provision with `overrides`; the UsageError's message, asserted one line, nothing created."""
    spec = make_spec(rig, REGIONS, table_version="2019.11.21", **overrides)
    before = world(rig, spec)
    with pytest.raises(UsageError) as raised:
        provision(spec, session)
    assert world(rig, spec) == before
    message = str(raised.value)
    assert "\n" not in message
    return message


def new_zone(rig: CloudContext, name: str, **extra: Any) -> str:
    r53 = client(rig, "route53", "us-east-1")
    return r53.create_hosted_zone(Name=name, CallerReference=uuid.uuid4().hex, **extra)["HostedZone"]["Id"]


def test_a_zone_that_does_not_exist_is_named(rig: CloudContext) -> None:
    message = no_changes(rig, hosted_zone_id="ZNOSUCHZONE0000")
    assert message.startswith("hosted_zone_id: no hosted zone 'ZNOSUCHZONE0000'"), message


def test_a_domain_outside_the_zone_is_refused(rig: CloudContext) -> None:
    zone_id = new_zone(rig, f"other{uuid.uuid4().hex[:6]}.test")
    try:
        message = no_changes(rig, hosted_zone_id=zone_id)
        assert message.startswith("domain: ") and "is not inside hosted zone" in message, message
    finally:
        client(rig, "route53", "us-east-1").delete_hosted_zone(Id=zone_id)


def test_a_private_zone_is_refused(rig: CloudContext) -> None:
    name = f"private{uuid.uuid4().hex[:6]}.test"
    zone_id = new_zone(rig, name, HostedZoneConfig={"Comment": "vpc only", "PrivateZone": True},
                       VPC={"VPCRegion": "us-east-1", "VPCId": "vpc-12345678"})
    try:
        message = no_changes(rig, hosted_zone_id=zone_id, domain=f"api.{name}", zone=name)
        assert message.startswith("hosted_zone_id: expected a public hosted zone"), message
    finally:
        client(rig, "route53", "us-east-1").delete_hosted_zone(Id=zone_id)


def test_a_cname_at_the_apex_of_the_given_zone_is_refused_before_any_change(rig: CloudContext) -> None:
    name = f"apex{uuid.uuid4().hex[:6]}.test"
    zone_id = new_zone(rig, name)
    try:
        message = no_changes(rig, hosted_zone_id=zone_id, domain=name, zone=name, custom_domain=False)
        assert message.startswith(f"domain: '{name}' is the apex of zone") and "CNAME" in message, message
    finally:
        client(rig, "route53", "us-east-1").delete_hosted_zone(Id=zone_id)


def test_teardown_deletes_the_zone_stack_only_when_provision_made_that_zone(rig: CloudContext) -> None:
    spec = make_spec(rig, REGIONS, table_version="2019.11.21")
    supplements = CfnSupplements(rig.aws_endpoint_url)
    users_zone = new_zone(rig, f"users{uuid.uuid4().hex[:6]}.test")
    zone_stack = (("us-east-1", f"{spec.stack_prefix}-zone"))
    try:
        description = provision(spec, session, supplements)   # no zone given: provision makes one
        made = description["hosted_zone_id"]
        # as `gameday teardown` reads it from the description it wrote
        loaded = teardown_spec(parse_deployment(yaml.safe_load(yaml.safe_dump(description))))
        assert (loaded.hosted_zone_id, loaded.custom_domain, loaded.domain) == (made, False, spec.domain)
        loaded.stack_prefix, loaded.aws_endpoint_url = spec.stack_prefix, spec.aws_endpoint_url

        loaded.hosted_zone_id = users_zone                      # a zone provision did not make
        deleted = teardown(loaded, session, supplements.deleted)
        assert f"{spec.stack_prefix}-zone" not in deleted and deleted
        assert zone_stack in world(rig, spec)["stacks"] and users_zone in world(rig, spec)["zones"]

        loaded.hosted_zone_id = made                            # the zone provision made
        assert teardown(loaded, session, supplements.deleted) == [f"{spec.stack_prefix}-zone"]
        assert zone_stack not in world(rig, spec)["stacks"]
        assert f"/hostedzone/{made}" not in world(rig, spec)["zones"] and made not in world(rig, spec)["zones"]
        assert users_zone in world(rig, spec)["zones"]
    finally:
        teardown(spec, session, supplements.deleted)
        client(rig, "route53", "us-east-1").delete_hosted_zone(Id=users_zone)
