"""The local cloud reaches into moto internals only at declared patch points. This test fails
when a moto upgrade moves or changes one of them (moto is pinned in pyproject.toml)."""

from __future__ import annotations

import importlib
from importlib.metadata import version

import pytest

from gameday.localcloud.motoglue import patches

COMPONENT_MODULES = (
    "gameday.localcloud.dynamodb.replication",
    "gameday.localcloud.dynamodb.global_tables_api",
    "gameday.localcloud.awslambda.runtime",
    "gameday.localcloud.apigateway.dataplane",
    "gameday.localcloud.route53.health_checkers",
    "gameday.localcloud.route53.api",
    "gameday.localcloud.route53.dns_answers",
    "gameday.localcloud.route53.dns_server",
    "gameday.localcloud.cloudformation.supplements",
    "gameday.localcloud.cloudformation.custom_domains",
    "gameday.localcloud.apigateway.custom_domains",
    "gameday.localcloud.tls.acm",
    "gameday.localcloud.motoglue.server",
    "gameday.localcloud.iam.enforcement",
    "gameday.localcloud.iam.principals",
    "gameday.localcloud.iam.resources",
    "gameday.localcloud.process.startup",
    "gameday.localcloud.process.deferred",
)


@pytest.fixture(scope="module")
def declared() -> list[patches.PatchPoint]:
    for name in COMPONENT_MODULES:
        importlib.import_module(name)
    return patches.all_points()


def test_moto_is_the_pinned_version() -> None:
    assert version("moto") == "5.2.5"


def test_every_component_declares_its_patch_points(declared: list[patches.PatchPoint]) -> None:
    targets = {p.target for p in declared}
    # The physics the cloud stands on: stream hook, Route 53 answers, global-table APIs.
    assert "moto.dynamodb.models.table:StreamShard.add" in targets
    assert any(t.startswith("moto.route53.responses:Route53.get_health_check_status") for t in targets)
    assert any("create_global_table" in t for t in targets)
    # IAM: moto's own resource-blind enforcement kept off, and the internals enforcement relies on.
    assert "moto.settings:INITIAL_NO_AUTH_ACTION_COUNT" in targets
    assert "moto.sts.models:STSBackend.assume_role" in targets
    assert "moto.iam.models:IAMBackend._init_managed_policies" in targets


def test_no_patch_point_moved_or_changed(declared: list[patches.PatchPoint]) -> None:
    assert patches.problems() == []


def test_a_moved_internal_is_reported() -> None:
    ghost = patches.PatchPoint(target="moto.dynamodb.models.table:StreamShard.add_but_renamed", why="test")
    assert ghost.problems() and "not found" in ghost.problems()[0]
    changed = patches.PatchPoint(target="moto.dynamodb.models.table:StreamShard.add", why="test",
                                 signature="(self, something_else)")
    assert changed.problems() and "signature changed" in changed.problems()[0]
    added = patches.PatchPoint(target="moto.dynamodb.models.table:StreamShard.add", why="test", kind="add")
    assert "now defines" in added.problems()[0]
