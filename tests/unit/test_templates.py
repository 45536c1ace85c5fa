"""The reference templates parse, reference only what they declare, use only supported resource
types, and have the reference shape (stage prod, routes, record policy by Condition), lint-clean."""

from __future__ import annotations

import json

import pytest

from gameday.provision import INFRA_DIR, SUPPORTED_RESOURCE_TYPES, load_templates, with_replicas


@pytest.fixture(scope="module")
def templates() -> dict:
    return load_templates(str(INFRA_DIR))


def types(doc: dict) -> dict[str, str]:
    return {name: r["Type"] for name, r in doc["Resources"].items()}


def test_every_template_loads_and_uses_supported_types_only(templates: dict) -> None:
    assert set(templates) == {"regional", "global_table", "routing", "zone", "lease"}
    for doc in templates.values():
        assert set(types(doc).values()) <= SUPPORTED_RESOURCE_TYPES
        json.dumps(doc)  # what provision() sends: short forms expanded to JSON


def test_regional_stack_has_the_functions_routes_stage_and_legacy_table(templates: dict) -> None:
    doc = templates["regional"]
    resources = doc["Resources"]
    functions = {r["Properties"]["Handler"]: r["Properties"] for r in resources.values()
                 if r["Type"] == "AWS::Lambda::Function"}
    assert set(functions) == {"put_item.handler", "get_item.handler", "health.handler"}
    for props in functions.values():
        assert props["Runtime"] == "python3.13"
        assert props["Code"] == {"S3Bucket": {"Ref": "CodeBucket"}, "S3Key": {"Ref": "CodeKey"}}
    assert functions["health.handler"]["Environment"]["Variables"] == {
        "status": "200", "HEALTH_DEPTH": {"Ref": "HealthCheckDepth"}, "HEALTH_MAX_AGE_S": {"Ref": "HealthCheckMaxAge"},
        "tableName": {"Ref": "TableName"}}
    assert doc["Parameters"]["HealthCheckDepth"]["Default"] == "deep"
    paths = sorted(r["Properties"]["PathPart"] for r in resources.values() if r["Type"] == "AWS::ApiGateway::Resource")
    assert paths == ["health", "item", "{itemId}"]
    methods = sorted(r["Properties"]["HttpMethod"] for r in resources.values() if r["Type"] == "AWS::ApiGateway::Method")
    assert methods == ["GET", "GET", "POST"]
    assert all(r["Properties"]["Integration"]["Type"] == "AWS_PROXY"
               for r in resources.values() if r["Type"] == "AWS::ApiGateway::Method")
    assert sum(r["Type"] == "AWS::Lambda::Permission" for r in resources.values()) == 3
    assert resources["Stage"]["Properties"]["StageName"] == {"Ref": "StageName"}
    assert doc["Parameters"]["StageName"]["Default"] == "prod"
    table = resources["MyGlobalTable"]
    assert table["Condition"] == "LegacyGlobalTable"
    assert table["Properties"]["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert table["Properties"]["BillingMode"] == "PAY_PER_REQUEST"
    assert doc["Outputs"]["ApiHost"]["Value"] == {"Fn::Sub": "${RestApi}.execute-api.${AWS::Region}.amazonaws.com"}


def test_global_table_replicas_are_filled_from_the_regions(templates: dict) -> None:
    doc = with_replicas(templates["global_table"], ["eu-west-1", "us-east-1"])
    (table,) = doc["Resources"].values()
    assert table["Properties"]["Replicas"] == [{"Region": "eu-west-1"}, {"Region": "us-east-1"}]
    (original,) = templates["global_table"]["Resources"].values()
    assert original["Properties"]["Replicas"] == [{"Region": {"Ref": "AWS::Region"}}]  # the loaded template is not modified


def test_routing_record_policy_is_chosen_by_condition(templates: dict) -> None:
    record = templates["routing"]["Resources"]["Record"]["Properties"]
    assert record["Failover"] == {"Fn::If": ["IsFailover", {"Ref": "FailoverRole"}, {"Ref": "AWS::NoValue"}]}
    assert record["Region"] == {"Fn::If": ["IsFailover", {"Ref": "AWS::NoValue"}, {"Ref": "Region"}]}
    assert record["SetIdentifier"] == {"Ref": "Region"}
    assert record["HealthCheckId"] == {"Ref": "HealthCheck"}
    check = templates["routing"]["Resources"]["HealthCheck"]["Properties"]["HealthCheckConfig"]
    assert check["ResourcePath"] == {"Ref": "HealthPath"}
    assert templates["routing"]["Parameters"]["CheckType"]["AllowedValues"] == ["HTTP", "HTTPS"]


def test_every_shipped_template_is_clean_under_cfn_lint() -> None:
    """cfn-lint's full rule set (errors, warnings, informational) finds nothing in any shipped template."""
    from cfnlint.api import ManualArgs, lint_file

    templates = sorted(INFRA_DIR.glob("*.yaml"))
    assert len(templates) >= 5, templates
    findings = [f"{path.name}: {match}" for path in templates
                for match in lint_file(path, config=ManualArgs(include_checks=["I"]))]
    assert not findings, "\n".join(findings)
