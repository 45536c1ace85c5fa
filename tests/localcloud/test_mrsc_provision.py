"""Provisioning a multi-Region strongly consistent (MRSC) global table through the CloudFormation
API against the local AWS endpoint (moto server over HTTP), with the local cloud's supplements and
global tables, checked with boto3 over HTTP: three replicas of one region set, or two and a witness
that holds no table; layouts AWS refuses are one line naming the field, before any call, or (from
a template of the user's) a failed stack that leaves no table."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gameday.errors import UsageError
from gameday.localcloud.cloudformation.supplements import CfnSupplements
from gameday.localcloud.process.context import CloudContext
from gameday.provision import (
    INFRA_DIR,
    ProvisionError,
    ProvisionSpec,
    load_templates,
    provision,
    teardown,
    with_replicas,
)
from tests.localcloud.test_provision import DESCRIPTION_KEYS, client, no_aws, session, world
from tests.localcloud.test_provision import make_spec as base_spec
from tests.support.cloud_rigs import provisioning_rig

EU = ["eu-west-1", "eu-west-2", "eu-west-3"]   # one MRSC region set


@pytest.fixture(scope="module")
def rig() -> Iterator[CloudContext]:
    with provisioning_rig(EU) as ctx:
        yield ctx


def make_spec(rig: CloudContext, regions: list[str], **overrides: Any) -> ProvisionSpec:
    """A 2019.11.21 spec with unique names (test_provision's), its regions on this rig's addresses."""
    spec = base_spec(rig, [], **{"table_version": "2019.11.21", **overrides})
    spec.regions = regions
    spec.region_addresses = {r: rig.region(r).address for r in regions if r in EU}
    return spec


def described(rig: CloudContext, spec: ProvisionSpec, region: str) -> dict[str, Any]:
    return client(rig, "dynamodb", region).describe_table(TableName=spec.table_name)["Table"]


def has_table(rig: CloudContext, spec: ProvisionSpec, region: str) -> bool:
    return spec.table_name in client(rig, "dynamodb", region).list_tables()["TableNames"]


def sent_global_table(rig: CloudContext, spec: ProvisionSpec) -> dict[str, Any]:
    """The global table's properties as the provisioner sent them (GetTemplate of its stack)."""
    body = client(rig, "cloudformation", spec.regions[0]).get_template(
        StackName=f"{spec.stack_prefix}-global-table")["TemplateBody"]
    doc = body if isinstance(body, dict) else json.loads(body)
    (table,) = [r for r in doc["Resources"].values() if r["Type"] == "AWS::DynamoDB::GlobalTable"]
    return table["Properties"]


def test_three_regions_of_one_set_make_a_strongly_consistent_table_in_each(rig: CloudContext) -> None:
    spec = make_spec(rig, EU, routing="latency", consistency="STRONG")
    supplements = CfnSupplements(rig.aws_endpoint_url)
    before = world(rig, spec)
    description = provision(spec, session, supplements)
    try:
        assert supplements.pending == []
        assert DESCRIPTION_KEYS <= set(description) and description["table"]["version"] == "2019.11.21"
        for region in EU:
            table = described(rig, spec, region)
            assert table.get("MultiRegionConsistency") == "STRONG", (region, table)
            assert table["GlobalTableVersion"] == "2019.11.21"
            assert sorted(r["RegionName"] for r in table["Replicas"]) == sorted(set(EU) - {region})
            assert not table.get("GlobalTableWitnesses")
        props = sent_global_table(rig, spec)
        assert props["Replicas"] == [{"Region": r} for r in EU] and "GlobalTableWitnesses" not in props
        stack = client(rig, "cloudformation", EU[0]).describe_stacks(
            StackName=f"{spec.stack_prefix}-global-table")["Stacks"][0]
        assert {"ParameterKey": "MultiRegionConsistency", "ParameterValue": "STRONG"} in stack["Parameters"]
    finally:
        teardown(spec, session, supplements.deleted)
    assert world(rig, spec) == before


def test_two_replicas_and_a_witness_make_tables_in_the_two_regions_only(rig: CloudContext) -> None:
    spec = make_spec(rig, EU[:2], routing="failover", consistency="STRONG", witness=EU[2])
    supplements = CfnSupplements(rig.aws_endpoint_url)
    before = world(rig, spec)
    description = provision(spec, session, supplements)
    try:
        assert [r["name"] for r in description["regions"]] == EU[:2]   # the witness serves nothing
        assert not has_table(rig, spec, EU[2])
        for region in EU[:2]:
            table = described(rig, spec, region)
            assert table.get("MultiRegionConsistency") == "STRONG", (region, table)
            assert [r["RegionName"] for r in table["Replicas"]] == [r for r in EU[:2] if r != region]
            assert [w["RegionName"] for w in table.get("GlobalTableWitnesses", [])] == [EU[2]], table
        props = sent_global_table(rig, spec)
        assert props["Replicas"] == [{"Region": r} for r in EU[:2]]
        assert props["GlobalTableWitnesses"] == [{"Region": EU[2]}]
    finally:
        teardown(spec, session, supplements.deleted)
    assert world(rig, spec) == before and not has_table(rig, spec, EU[2])


def test_the_witness_is_written_beside_the_replicas_never_among_them() -> None:
    template = load_templates(str(INFRA_DIR))["global_table"]
    (table,) = with_replicas(template, EU[:2], EU[2])["Resources"].values()
    assert table["Properties"]["Replicas"] == [{"Region": "eu-west-1"}, {"Region": "eu-west-2"}]
    assert table["Properties"]["GlobalTableWitnesses"] == [{"Region": "eu-west-3"}]
    (plain,) = with_replicas(template, EU)["Resources"].values()
    assert "GlobalTableWitnesses" not in plain["Properties"]
    parameter = template["Parameters"]["MultiRegionConsistency"]
    assert (parameter["Default"], parameter["AllowedValues"]) == ("EVENTUAL", ["EVENTUAL", "STRONG"])
    assert table["Properties"]["MultiRegionConsistency"] == {"Ref": "MultiRegionConsistency"}


def without_consistency_parameter(tmp_path: Path) -> str:
    """The reference templates, the global table's without its MultiRegionConsistency parameter."""
    target = tmp_path / "templates"
    target.mkdir()
    for name in ("regional.yaml", "global-table.yaml", "routing.yaml", "zone.yaml"):
        shutil.copy(INFRA_DIR / name, target / name)
    text = (target / "global-table.yaml").read_text()
    start = text.index("  MultiRegionConsistency:\n    Type: String")
    end = text.index("\nResources:")
    text = text[:start] + text[end:]
    text = text.replace("      MultiRegionConsistency: !Ref MultiRegionConsistency\n", "")
    (target / "global-table.yaml").write_text(text)
    return str(target)


@pytest.mark.parametrize("overrides, needle", [
    ({"consistency": "strong"}, "consistency: expected one of EVENTUAL, STRONG, got 'strong'"),
    ({"consistency": "BOGUS"}, "consistency: expected one of EVENTUAL, STRONG, got 'BOGUS'"),
    ({"consistency": "STRONG", "table_version": "2017.11.29"},
     "consistency: strong consistency needs a 2019.11.21 table, table_version is 2017.11.29"),
    ({"consistency": "STRONG", "regions": EU[:2]}, "consistency: multi-Region strong consistency takes exactly 3"),
    ({"consistency": "STRONG", "regions": ["eu-west-1", "us-east-1"], "witness": "eu-west-2"},
     "consistency: all 3 regions must come from one region set"),
    ({"consistency": "STRONG", "witness": "eu-central-1"}, "consistency: a witness pairs with exactly 2 replicas"),
    ({"regions": EU[:2], "witness": "eu-west-3"}, "witness: a witness is only for consistency strong"),
    ({"consistency": "STRONG", "regions": EU[:2], "witness": "xx-fake-9"}, "witness: unknown region 'xx-fake-9'"),
    ({"consistency": "STRONG", "regions": EU[:2], "witness": "eu-west-2"}, "witness: eu-west-2 is one of regions"),
])
def test_a_layout_aws_refuses_is_one_line_naming_the_field_before_any_call(
        rig: CloudContext, overrides: dict[str, Any], needle: str) -> None:
    fields = dict(overrides)
    spec = make_spec(rig, fields.pop("regions", EU), routing="latency", **fields)
    before = world(rig, spec)
    with pytest.raises(UsageError) as raised:
        provision(spec, no_aws)
    assert needle in str(raised.value) and "\n" not in str(raised.value), str(raised.value)
    assert world(rig, spec) == before


def test_strong_needs_the_templates_consistency_parameter(rig: CloudContext, tmp_path: Path) -> None:
    """Else the table would quietly be eventually consistent."""
    spec = make_spec(rig, EU, routing="latency", consistency="STRONG", templates_dir=without_consistency_parameter(tmp_path))
    with pytest.raises(UsageError) as raised:
        provision(spec, no_aws)
    assert str(raised.value).startswith("consistency: STRONG needs a MultiRegionConsistency parameter in ")


def test_a_users_template_whose_layout_mrsc_refuses_fails_its_stack_and_leaves_no_table(
        rig: CloudContext, tmp_path: Path) -> None:
    """A template of the user's that sets STRONG itself on two replicas without a witness: AWS
    fails the stack; so does the local cloud, with the reason, and without a table left over."""
    target = tmp_path / "templates"
    target.mkdir()
    for name in ("regional.yaml", "global-table.yaml", "routing.yaml", "zone.yaml"):
        shutil.copy(INFRA_DIR / name, target / name)
    text = (INFRA_DIR / "global-table.yaml").read_text()
    hard_coded = text.replace("MultiRegionConsistency: !Ref MultiRegionConsistency", "MultiRegionConsistency: STRONG")
    assert hard_coded != text
    (target / "global-table.yaml").write_text(hard_coded)
    spec = make_spec(rig, EU[:2], routing="failover", templates_dir=str(target))
    supplements = CfnSupplements(rig.aws_endpoint_url)
    before = world(rig, spec)
    try:
        with pytest.raises(ProvisionError) as raised:
            provision(spec, session, supplements)
        message = str(raised.value)
        assert message.startswith(f"stack {spec.stack_prefix}-global-table (eu-west-1):"), message
        assert "MyGlobalTable: multi-Region strong consistency takes exactly 3 regions" in message
        assert "\n" not in message
        assert not any(has_table(rig, spec, region) for region in EU)
    finally:
        teardown(spec, session, supplements.deleted)
    assert world(rig, spec) == before
