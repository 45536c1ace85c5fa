"""Deploy the reference backend (or a user's templates of the same resource types) through the
CloudFormation API: the same code for the local cloud and for AWS.

Order: validate everything (no AWS call before that) -> zip infra/functions and upload it to a
bucket per region -> hosted zone (unless attaching to one) -> 2019.11.21 global table stack ->
regional stacks -> 2017.11.29 CreateGlobalTable over the regional tables -> one routing stack per
region. `hooks` is called after each stack is complete, so the local cloud can supply what moto's
CloudFormation drops (gameday/localcloud/cfn_supplements.py); on AWS it is None.
Returns the deployment description (the format the README's deployment file reference lists).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from botocore.exceptions import BotoCoreError, ClientError
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from gameday import infra
from gameday.deployment import (
    FAILOVER_PAIRS,
    HOSTED_ZONE_ID,
    check_pairs,
    consistency_layout,
    is_dns_name,
    known_regions,
)
from gameday.errors import GamedayError, UsageError
from gameday.table_consistency import CONSISTENCIES, EVENTUAL, STRONG

INFRA_DIR = infra.templates_dir()
FUNCTIONS_DIR = infra.functions_dir()
TEMPLATE_FILES = {
    "regional": "regional.yaml",
    "global_table": "global-table.yaml",
    "routing": "routing.yaml",
    "zone": "zone.yaml",
}
# The custom-domain shape (ProvisionSpec.custom_domain): per region an ACM certificate, a REGIONAL
# API Gateway domain name and a base path mapping; routing by alias A records to the regional
# domain names instead of CNAMEs to the execute-api hosts.
CUSTOM_DOMAIN_TEMPLATE_FILES = {
    "regional_domain": "regional-domain.yaml",
    "routing_alias": "routing-alias.yaml",
}
# The lease table that keeps two game days from faulting one deployment at once: deployed when the
# templates folder has it (the reference templates do), named in the description as `lease`.
LEASE_TEMPLATE_FILE = "lease-table.yaml"
# Failover between chosen pairs: per region a failover pair (the region, then its partner) under its
# own name, and the domain's latency record aliasing it (routing failover_pairs, alias records only).
PAIR_TEMPLATE_FILES = {"pair_failover": "pair-failover.yaml"}
ROUTE53_STACK_REGION = "us-east-1"  # Route 53 is global; its stacks live in us-east-1
# Names no one can delegate (RFC 2606, RFC 6761, RFC 6762, RFC 7686): a deployment on AWS there has
# no certificate and no client can resolve it.
RESERVED_TLDS = ("test", "example", "invalid", "localhost", "local", "onion")
RESERVED_SECOND_LEVEL = ("example.com", "example.net", "example.org")

TABLE_VERSIONS = ("2017.11.29", "2019.11.21")
ROUTINGS = ("failover", "latency", FAILOVER_PAIRS)
RECORD_TYPES = ("alias", "cname")
ALIAS_TARGET_TTL_S = 60               # what an API Gateway domain name answers with (an alias's TTL)
HEALTH_DEPTHS = ("deep", "shallow")   # regional.yaml's HealthCheckDepth: what /health proves
REGION_ATTRIBUTE = {"2017.11.29": "aws:rep:updateregion", "2019.11.21": "written_region"}
# The resource types the provisioner and the local cloud handle (reference templates + IAM extras).
SUPPORTED_RESOURCE_TYPES = frozenset({
    "AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy",
    "AWS::Lambda::Function", "AWS::Lambda::Permission",
    "AWS::ApiGateway::RestApi", "AWS::ApiGateway::Resource", "AWS::ApiGateway::Method",
    "AWS::ApiGateway::Deployment", "AWS::ApiGateway::Stage",
    "AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable",
    "AWS::Route53::HealthCheck", "AWS::Route53::RecordSet", "AWS::Route53::HostedZone",
    "AWS::CertificateManager::Certificate", "AWS::ApiGateway::DomainName", "AWS::ApiGateway::BasePathMapping",
})
# Outputs the provisioner reads, per template.
REQUIRED_OUTPUTS = {
    "regional": ("ApiId", "ApiHost", "PutFunctionName", "GetFunctionName", "HealthFunctionName"),
    "global_table": (),
    "routing": ("HealthCheckId",),
    "zone": ("HostedZoneId",),
    "regional_domain": ("RegionalDomainName", "RegionalHostedZoneId"),
    "routing_alias": ("HealthCheckId",),
    "lease": ("LeaseTableName",),
    "pair_failover": ("PairName",),
}


class ProvisionError(GamedayError):
    """A stack or API call failed during provisioning (one line, names the stack and the reason)."""


@dataclass
class ProvisionSpec:
    """What to deploy. Defaults are the AWS shape; the local cloud overrides check type/port,
    region addresses and the data-plane port."""

    regions: list[str]
    table_name: str = "MyGlobalTable"
    table_version: str = "2017.11.29"
    # The global table's MultiRegionConsistency: EVENTUAL, or STRONG (MRSC: 3 regions of one region
    # set, or 2 and `witness`, a third region that holds no replica; 2019.11.21 only).
    consistency: str = EVENTUAL
    witness: str | None = None
    routing: str = "failover"
    # failover_pairs: {region: partner}, the region each region's clients fail over to (None: the
    # next region in `regions`, the last's the first).
    pairs: dict[str, str] | None = None
    domain: str = "api.gameday.test"
    zone: str = "gameday.test"
    hosted_zone_id: str | None = None          # attach: records go into this existing zone
    check_type: str = "HTTPS"
    check_port: int = 443
    request_interval: int = 10
    failure_threshold: int = 3
    record_ttl_s: int = 60
    # The custom domain's records: "alias" (alias A records to each region's RegionalDomainName,
    # answering with the target's TTL) or "cname" (CNAMEs, TTL record_ttl_s). None: the shape's own
    # (alias with a custom domain; without one the records are CNAMEs to the execute-api hosts).
    record_type: str | None = None
    templates_dir: str | None = None           # None: infra/
    functions_dir: str | None = None           # None: infra/functions
    stack_prefix: str = "gameday"
    function_prefix: str = "gameday"
    stage: str = "prod"
    health_depth: str = "deep"                 # deep: /health writes and reads back; shallow: the article's
    health_max_age_s: float = 5.0              # seconds a deep result is reused (HealthCheckMaxAge)
    # True: the custom-domain shape (regional-domain.yaml per region, routing-alias.yaml records).
    custom_domain: bool = False
    # How clients reach each region: local cloud gives addresses + one port (http://addr:port/stage);
    # otherwise https://{ApiHost}/{stage}.
    region_addresses: dict[str, str] = field(default_factory=dict)
    data_plane_port: int | None = None
    # Copied into the description as is (the caller knows them, provisioning does not).
    aws_endpoint_url: str | None = None
    control_url: str | None = None
    time_scale: float = 1.0
    dns_resolver: str = "system"
    # Polling of stack status (local: fast; AWS: CloudFormation takes minutes).
    poll_interval_s: float = 5.0
    stack_timeout_s: float = 1800.0


@dataclass
class CreatedStack:
    """What a hook receives once a stack is complete."""

    kind: str                      # regional | global_table | routing | zone
    region: str
    stack_name: str
    stack_id: str
    template: dict[str, Any]       # the template as sent (short-form tags expanded)
    parameters: dict[str, str]
    outputs: dict[str, str]
    deployment_regions: list[str]


@dataclass
class DeletedStack:
    """What teardown's `on_deleted` receives once a stack is gone."""

    kind: str
    region: str
    stack_name: str
    stack_id: str
    template: dict[str, Any]
    physical_ids: dict[str, str]   # logical id -> physical id, as listed before the deletion


SessionFactory = Callable[[str], Any]       # region -> boto3.session.Session
StackHook = Callable[[CreatedStack], None]
DeleteHook = Callable[[DeletedStack], None]


# ---------------------------------------------------------------- templates

class _CfnLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML loader that turns CloudFormation short forms (!Ref, !Sub, ...) into their JSON form.
    libyaml's parser when PyYAML has it (~10x faster; same constructors, so the same document)."""


def _cfn_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    name = tag_suffix.lstrip("!")
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode), node
        value = loader.construct_mapping(node, deep=True)
    if name == "Ref":
        return {"Ref": value}
    if name == "Condition":
        return {"Condition": value}
    if name == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{name}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template(path: Path) -> dict[str, Any]:
    """Parse a YAML or JSON template; UsageError (one line) if it is not a usable template."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"template {path}: cannot read ({exc.strerror})") from None
    try:
        doc = yaml.load(text, Loader=_CfnLoader)  # JSON is YAML too
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        raise UsageError(f"template {path}:{line} is not valid YAML/JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("Resources"), dict) or not doc["Resources"]:
        raise UsageError(f"template {path}: expected a mapping with a non-empty Resources section")
    for logical_id, resource in doc["Resources"].items():
        rtype = resource.get("Type") if isinstance(resource, dict) else None
        if rtype not in SUPPORTED_RESOURCE_TYPES:
            raise UsageError(f"template {path}: resource {logical_id} has unsupported type {rtype!r} "
                             f"(supported: {', '.join(sorted(SUPPORTED_RESOURCE_TYPES))})")
    return doc


PSEUDO_PARAMETERS = frozenset({"AWS::AccountId", "AWS::Region", "AWS::StackId", "AWS::StackName",
                               "AWS::URLSuffix", "AWS::NoValue", "AWS::Partition", "AWS::NotificationARNs"})


def _references(node: Any) -> Iterator[tuple[str, str]]:
    """(kind, name) for every Ref, GetAtt target, ${...} in Sub, Condition and If in a template node."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                yield "Ref", value
            elif key == "Fn::GetAtt":
                target = value.split(".", 1)[0] if isinstance(value, str) else value[0]
                yield "GetAtt", target
            elif key == "Fn::Sub":
                text, local = (value[0], value[1]) if isinstance(value, list) else (value, {})
                for name in re.findall(r"\$\{([^!}][^}]*)\}", text if isinstance(text, str) else ""):
                    if name not in local:
                        yield ("GetAtt", name.split(".", 1)[0]) if "." in name else ("Ref", name)
            elif key == "Fn::If" and isinstance(value, list) and value:
                yield "Condition", value[0]
            elif key == "Condition" and isinstance(value, str):
                yield "Condition", value
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def check_references(doc: dict[str, Any], path: Path) -> None:
    """What `aws cloudformation validate-template` catches: references to undeclared names."""
    parameters = set(doc.get("Parameters") or {})
    resources = set(doc["Resources"])
    conditions = set(doc.get("Conditions") or {})
    known = {"Ref": parameters | resources | PSEUDO_PARAMETERS, "GetAtt": resources, "Condition": conditions}
    for section in ("Resources", "Outputs", "Conditions"):
        for name, node in (doc.get(section) or {}).items():
            for kind, target in _references(node):
                if target not in known[kind]:
                    raise UsageError(f"template {path}: {section}.{name}: {kind} to undeclared {target!r}")


def load_templates(templates_dir: str | None, custom_domain: bool = False,
                   pairs: bool = False) -> dict[str, dict[str, Any]]:
    base = Path(templates_dir) if templates_dir else INFRA_DIR
    if not base.is_dir():
        raise UsageError(f"templates: {base} is not a directory")
    templates: dict[str, dict[str, Any]] = {}
    files = {**TEMPLATE_FILES, **(CUSTOM_DOMAIN_TEMPLATE_FILES if custom_domain else {}),
             **(PAIR_TEMPLATE_FILES if pairs else {})}
    for kind, filename in files.items():
        path = base / filename
        if not path.is_file():
            raise UsageError(f"templates: {base} has no {filename}")
        doc = load_template(path)
        check_references(doc, path)
        outputs = doc.get("Outputs") or {}
        for key in REQUIRED_OUTPUTS[kind]:
            if key not in outputs:
                raise UsageError(f"template {path}: missing output {key}")
        templates[kind] = doc
    lease = base / LEASE_TEMPLATE_FILE
    if lease.is_file():
        doc = load_template(lease)
        check_references(doc, lease)
        if "LeaseTableName" not in (doc.get("Outputs") or {}):
            raise UsageError(f"template {lease}: missing output LeaseTableName")
        templates["lease"] = doc
    globals_ = [r for r in templates["global_table"]["Resources"].values()
                if r["Type"] == "AWS::DynamoDB::GlobalTable"]
    if len(globals_) != 1:
        raise UsageError(f"template {base / TEMPLATE_FILES['global_table']}: expected exactly one "
                         "AWS::DynamoDB::GlobalTable resource")
    return templates


def with_replicas(template: dict[str, Any], regions: list[str], witness: str | None = None) -> dict[str, Any]:
    """The global-table template with Replicas set to one entry per region (first = stack region)
    and GlobalTableWitnesses to the witness, if any (it holds no replica, so it is not in Replicas)."""
    doc = copy.deepcopy(template)
    for resource in doc["Resources"].values():
        if resource["Type"] == "AWS::DynamoDB::GlobalTable":
            properties = resource.setdefault("Properties", {})
            properties["Replicas"] = [{"Region": r} for r in regions]
            properties.pop("GlobalTableWitnesses", None)
            if witness is not None:
                properties["GlobalTableWitnesses"] = [{"Region": witness}]
    return doc


# ---------------------------------------------------------------- validation

def _bare_zone_id(zone_id: str) -> str:
    """Z123... from /hostedzone/Z123... (Route 53 answers both forms)."""
    return zone_id.rsplit("/", 1)[-1]


def reserved_domain(domain: str) -> str | None:
    """Why `domain` cannot be deployed on AWS (a reserved name), or None."""
    name = domain.rstrip(".").lower()
    for reserved in RESERVED_SECOND_LEVEL:
        if name == reserved or name.endswith("." + reserved):
            return f"{reserved} is reserved for documentation by RFC 2606"
    tld = name.rsplit(".", 1)[-1]
    if tld in RESERVED_TLDS:
        return f".{tld} is a reserved top-level domain (RFC 2606, 6761), never delegated"
    return None


def _validate_aws_target(spec: ProvisionSpec) -> None:
    """What AWS itself needs (target aws: no endpoint override): a delegated public zone of the
    user's, named by its id, and a domain that can be delegated."""
    if spec.hosted_zone_id is None:
        raise UsageError("hosted_zone_id: required for target aws: the id of a public hosted zone delegated to "
                         "Route 53 that contains the domain (e.g. Z0123456789ABCDEFGHIJ)")
    if not HOSTED_ZONE_ID.match(spec.hosted_zone_id):
        raise UsageError(f"hosted_zone_id: expected a Route 53 hosted zone id like Z0123456789ABCDEFGHIJ, "
                         f"got {spec.hosted_zone_id!r}")
    reason = reserved_domain(spec.domain)
    if reason is not None:
        raise UsageError(f"domain: expected a name in a zone delegated to Route 53, got {spec.domain!r}: {reason}")


def pairs_of(spec: ProvisionSpec) -> dict[str, str]:
    """Each region's failover partner under failover_pairs: the spec's, or the next region's."""
    regions = spec.regions
    return dict(spec.pairs) if spec.pairs else {r: regions[(i + 1) % len(regions)] for i, r in enumerate(regions)}


def records_of(spec: ProvisionSpec) -> str:
    """The kind of the custom domain's records: the spec's, or the shape's own."""
    return spec.record_type or ("alias" if spec.custom_domain else "cname")


def validate(spec: ProvisionSpec) -> dict[str, dict[str, Any]]:
    """Check the spec and load the templates; UsageError naming the field. Makes no AWS call."""
    if not spec.regions or len(spec.regions) < 2:
        raise UsageError(f"regions: expected at least 2 regions, got {len(spec.regions or [])}")
    if len(set(spec.regions)) != len(spec.regions):
        raise UsageError(f"regions: duplicate region in {','.join(spec.regions)}")
    valid = known_regions()
    for region in spec.regions:
        if region not in valid:
            raise UsageError(f"regions: unknown region {region!r}")
    if spec.routing not in ROUTINGS:
        raise UsageError(f"routing: expected one of {', '.join(ROUTINGS)}, got {spec.routing!r}")
    if spec.routing == "failover" and len(spec.regions) != 2:
        raise UsageError("routing: failover routing takes exactly 2 regions; use latency, or failover_pairs")
    if spec.pairs is not None and spec.routing != FAILOVER_PAIRS:
        raise UsageError(f"pairs: only with routing {FAILOVER_PAIRS}, not {spec.routing}")
    if spec.routing == FAILOVER_PAIRS:
        if spec.pairs is not None:
            check_pairs(spec.pairs, spec.regions, source="pairs")
        if not spec.custom_domain or spec.record_type == "cname":
            raise UsageError(f"routing: {FAILOVER_PAIRS} needs alias records in the custom-domain shape (the "
                             "latency records alias each region's failover pair)")
    if spec.table_version not in TABLE_VERSIONS:
        raise UsageError(f"table_version: expected one of {', '.join(TABLE_VERSIONS)}, got {spec.table_version!r}")
    if spec.consistency not in CONSISTENCIES:
        raise UsageError(f"consistency: expected one of {', '.join(CONSISTENCIES)}, got {spec.consistency!r}")
    consistency_layout(spec.consistency, spec.witness, spec.regions, spec.table_version,
                       consistency_source="consistency", witness_source="witness", regions_source="regions",
                       table_version_source="table_version")
    if not spec.table_name or not all(c.isalnum() or c in "_.-" for c in spec.table_name) \
            or not 3 <= len(spec.table_name) <= 255:
        raise UsageError(f"table_name: expected 3-255 characters of [A-Za-z0-9_.-], got {spec.table_name!r}")
    if spec.health_depth not in HEALTH_DEPTHS:
        raise UsageError(f"health_depth: expected one of {', '.join(HEALTH_DEPTHS)}, got {spec.health_depth!r}")
    if not 0 <= spec.health_max_age_s <= 3600:
        raise UsageError(f"health_max_age_s: expected 0 to 3600 seconds, got {spec.health_max_age_s!r}")
    if spec.check_type not in ("HTTP", "HTTPS"):
        raise UsageError(f"check_type: expected HTTP or HTTPS, got {spec.check_type!r}")
    if type(spec.check_port) is not int or not 1 <= spec.check_port <= 65535:
        raise UsageError(f"check_port: expected 1-65535, got {spec.check_port!r}")
    if spec.request_interval not in (10, 30):
        raise UsageError(f"request_interval: expected 10 or 30, got {spec.request_interval!r}")
    if type(spec.failure_threshold) is not int or not 1 <= spec.failure_threshold <= 10:
        raise UsageError(f"failure_threshold: expected 1-10, got {spec.failure_threshold!r}")
    if type(spec.record_ttl_s) is not int or not 0 <= spec.record_ttl_s <= 2147483647:
        raise UsageError(f"record_ttl_s: expected a non-negative integer, got {spec.record_ttl_s!r}")
    if spec.record_type is not None and spec.record_type not in RECORD_TYPES:
        raise UsageError(f"record_type: expected one of {', '.join(RECORD_TYPES)}, got {spec.record_type!r}")
    if spec.record_type == "alias" and not spec.custom_domain:
        raise UsageError("record_type: alias records point at a custom domain's target, which only the "
                         "custom-domain shape has (use cname)")
    if records_of(spec) == "alias" and spec.record_ttl_s != ALIAS_TARGET_TTL_S:
        raise UsageError(f"record_ttl_s: alias records answer with their target's TTL ({ALIAS_TARGET_TTL_S} s for "
                         f"an API Gateway domain), not {spec.record_ttl_s}; use record_type cname for a TTL of your own")
    domain, zone = spec.domain.rstrip(".").lower(), spec.zone.rstrip(".").lower()
    if not is_dns_name(domain):
        raise UsageError(f"domain: expected a DNS name like api.mycompany.com, got {spec.domain!r}")
    if spec.hosted_zone_id is None and not (zone and (domain == zone or domain.endswith("." + zone))):
        raise UsageError(f"domain: {spec.domain!r} is not inside zone {spec.zone!r}")
    if spec.aws_endpoint_url is None:
        _validate_aws_target(spec)
    for region in spec.region_addresses:
        if region not in spec.regions:
            raise UsageError(f"region_addresses: {region!r} is not one of the regions")
    if spec.region_addresses and spec.data_plane_port is None:
        raise UsageError("data_plane_port: required when region_addresses are given")
    for name, value in (("stack_prefix", spec.stack_prefix), ("function_prefix", spec.function_prefix)):
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,39}", value or ""):
            raise UsageError(f"{name}: expected a letter then up to 39 letters, digits or '-', got {value!r}")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", spec.stage or ""):
        raise UsageError(f"stage: expected 1-128 letters, digits, '-' or '_', got {spec.stage!r}")
    functions = Path(spec.functions_dir) if spec.functions_dir else FUNCTIONS_DIR
    if not functions.is_dir() or not any(functions.glob("*.py")):
        raise UsageError(f"functions_dir: {functions} holds no handler modules")
    templates = load_templates(spec.templates_dir, custom_domain=spec.custom_domain,
                               pairs=spec.routing == FAILOVER_PAIRS)
    _check_consistency_parameter(spec, templates["global_table"])
    return templates


def _check_consistency_parameter(spec: ProvisionSpec, template: dict[str, Any]) -> None:
    """STRONG reaches the table only through the template's MultiRegionConsistency parameter: a
    template without it would quietly make an eventually consistent table."""
    if spec.consistency == STRONG and "MultiRegionConsistency" not in (template.get("Parameters") or {}):
        base = Path(spec.templates_dir) if spec.templates_dir else INFRA_DIR
        raise UsageError(f"consistency: STRONG needs a MultiRegionConsistency parameter in "
                         f"{base / TEMPLATE_FILES['global_table']} (fed to the table's MultiRegionConsistency)")


# ---------------------------------------------------------------- packaging

def package_functions(functions_dir: Path) -> bytes:
    """A deterministic zip of the handler modules (same bytes for the same code: stable S3 key)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(functions_dir.glob("*.py")):
            info = zipfile.ZipInfo(path.name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


# ---------------------------------------------------------------- the provisioner

class _Provisioner:
    def __init__(self, spec: ProvisionSpec, session_factory: SessionFactory, hooks: StackHook | None) -> None:
        self.spec = spec
        self._sessions = session_factory
        self._hooks = hooks
        self._session_by_region: dict[str, Any] = {}
        self._clients: dict[tuple[str, str], Any] = {}

    def client(self, service: str, region: str) -> Any:
        key = (service, region)
        if key not in self._clients:
            if region not in self._session_by_region:
                self._session_by_region[region] = self._sessions(region)
            session = self._session_by_region[region]
            self._clients[key] = session.client(service, region_name=region, endpoint_url=self.spec.aws_endpoint_url)
        return self._clients[key]

    def call(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            raise ProvisionError(f"{what}: {err.get('Code', 'Error')}: {err.get('Message', exc)}") from None
        except BotoCoreError as exc:
            raise ProvisionError(f"{what}: {exc}") from None

    # stacks ---------------------------------------------------------------
    def stack_name(self, kind: str, region: str | None = None) -> str:
        base = f"{self.spec.stack_prefix}-{kind.replace('_', '-')}"
        return f"{base}-{region}" if region else base

    def create_stack(self, kind: str, region: str, name: str, template: dict[str, Any],
                     parameters: dict[str, Any]) -> dict[str, str]:
        declared = template.get("Parameters") or {}
        params = {k: str(v) for k, v in parameters.items() if k in declared}
        cfn = self.client("cloudformation", region)
        created = self.call(f"stack {name} ({region})", cfn.create_stack, StackName=name,
                            TemplateBody=json.dumps(template),
                            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
                            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"])
        stack = self.wait(cfn, name, region, "CREATE_COMPLETE")
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        if self._hooks is not None:
            try:
                self._hooks(CreatedStack(kind=kind, region=region, stack_name=name, stack_id=created["StackId"],
                                         template=template, parameters=params, outputs=outputs,
                                         deployment_regions=list(self.spec.regions)))
            except Exception as exc:  # the hook's failure, whatever its type, ends provisioning in one line
                reason = str(exc).replace("\n", " ")
                raise ProvisionError(f"stack {name} ({region}): after creation: {type(exc).__name__}: {reason}") from exc
        return outputs

    def wait(self, cfn: Any, name: str, region: str, goal: str) -> dict[str, Any]:
        def describe() -> dict[str, Any] | None:
            try:
                stacks = cfn.describe_stacks(StackName=name)["Stacks"]
            except ClientError as exc:
                if goal == "DELETE_COMPLETE" and "does not exist" in str(exc):
                    return {"StackStatus": "DELETE_COMPLETE"}
                raise
            return stacks[0] if stacks else None

        def pending(stack: dict[str, Any] | None) -> bool:
            return stack is None or stack["StackStatus"].endswith("_IN_PROGRESS")

        # On timeout the last answer is returned (retry_error_callback) and judged below.
        stack = self.call(f"stack {name} ({region})", lambda: Retrying(
            stop=stop_after_delay(self.spec.stack_timeout_s), wait=wait_fixed(self.spec.poll_interval_s),
            retry=retry_if_result(pending),
            retry_error_callback=lambda state: state.outcome.result() if state.outcome is not None else None,
        )(describe))
        if stack is None or stack["StackStatus"].endswith("_IN_PROGRESS"):
            raise ProvisionError(f"stack {name} ({region}): still {stack and stack['StackStatus']} "
                                 f"after {self.spec.stack_timeout_s:g} s")
        if stack["StackStatus"] != goal:
            raise ProvisionError(f"stack {name} ({region}): {stack['StackStatus']}: {self.failure_reason(cfn, name, stack)}")
        return stack

    def failure_reason(self, cfn: Any, name: str, stack: dict[str, Any]) -> str:
        try:
            events = cfn.describe_stack_events(StackName=name)["StackEvents"]
        except (ClientError, BotoCoreError):
            events = []
        for event in reversed(events):  # oldest failure first: the cause, not the cascade
            if event.get("ResourceStatus", "").endswith("_FAILED") and event.get("ResourceStatusReason"):
                return f"{event.get('LogicalResourceId')}: {event['ResourceStatusReason']}".replace("\n", " ")
        return (stack.get("StackStatusReason") or "no reason given").replace("\n", " ")

    # steps ----------------------------------------------------------------
    def upload_code(self, region: str, account: str, code: bytes) -> tuple[str, str]:
        bucket = f"{self.spec.stack_prefix}-code-{account}-{region}".lower()
        key = f"functions-{hashlib.sha256(code).hexdigest()[:16]}.zip"
        s3 = self.client("s3", region)
        try:
            s3.head_bucket(Bucket=bucket)
        except ClientError:
            kwargs: dict[str, Any] = {"Bucket": bucket}
            if region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
            self.call(f"code bucket {bucket}", s3.create_bucket, **kwargs)
        self.call(f"code upload s3://{bucket}/{key}", s3.put_object, Bucket=bucket, Key=key, Body=code)
        return bucket, key

    def create_legacy_global_table(self) -> None:
        ddb = self.client("dynamodb", self.spec.regions[0])
        self.call(f"CreateGlobalTable {self.spec.table_name}", ddb.create_global_table,
                  GlobalTableName=self.spec.table_name,
                  ReplicationGroup=[{"RegionName": r} for r in self.spec.regions])

    def remove_legacy_replicas(self) -> None:
        """Take every region out of the 2017.11.29 global table (if it exists), one at a time."""
        ddb = self.client("dynamodb", self.spec.regions[0])
        try:
            group = ddb.describe_global_table(GlobalTableName=self.spec.table_name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "GlobalTableNotFoundException":
                return
            raise ProvisionError(f"DescribeGlobalTable {self.spec.table_name}: {exc}") from None
        for replica in group["GlobalTableDescription"].get("ReplicationGroup", []):
            self.call(f"UpdateGlobalTable {self.spec.table_name} (remove {replica['RegionName']})",
                      ddb.update_global_table, GlobalTableName=self.spec.table_name,
                      ReplicaUpdates=[{"Delete": {"RegionName": replica["RegionName"]}}])

    def made_zone(self, zone_id: str) -> bool:
        """Whether provision created the zone `zone_id` (its zone stack exists and made that zone):
        a zone of the user's is never deleted."""
        cfn = self.client("cloudformation", ROUTE53_STACK_REGION)
        try:
            stacks = cfn.describe_stacks(StackName=self.stack_name("zone"))["Stacks"]
        except ClientError:
            return False
        outputs = {o["OutputKey"]: o["OutputValue"] for s in stacks if s["StackStatus"] != "DELETE_COMPLETE"
                   for o in s.get("Outputs", [])}
        return _bare_zone_id(outputs.get("HostedZoneId", "")) == _bare_zone_id(zone_id)

    def check_zone(self, zone_id: str) -> None:
        """The zone named by id exists, is public and holds the domain, and the records fit there
        (no CNAME at its apex): read-only, before any change."""
        r53 = self.client("route53", ROUTE53_STACK_REGION)
        try:
            found = r53.get_hosted_zone(Id=_bare_zone_id(zone_id))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchHostedZone":
                raise UsageError(f"hosted_zone_id: no hosted zone {zone_id!r} in this account") from None
            err = exc.response.get("Error", {})
            raise ProvisionError(f"GetHostedZone {zone_id}: {err.get('Code', 'Error')}: "
                                 f"{err.get('Message', exc)}") from None
        except BotoCoreError as exc:
            raise ProvisionError(f"GetHostedZone {zone_id}: {exc}") from None
        zone = found["HostedZone"]
        name = zone["Name"].rstrip(".").lower()
        domain = self.spec.domain.rstrip(".").lower()
        if (zone.get("Config") or {}).get("PrivateZone"):
            raise UsageError(f"hosted_zone_id: expected a public hosted zone, got private zone {zone_id!r} ({name})")
        if not (domain == name or domain.endswith("." + name)):
            raise UsageError(f"domain: {self.spec.domain!r} is not inside hosted zone {zone_id!r} ({name})")
        if domain == name and not self.spec.custom_domain:
            raise UsageError(f"domain: {self.spec.domain!r} is the apex of zone {zone_id!r}, where a CNAME "
                             "record is not allowed (use a name below it, or alias A records)")

    def api_url(self, region: str, api_host: str) -> str:
        address = self.spec.region_addresses.get(region)
        if address is not None:
            return f"http://{address}:{self.spec.data_plane_port}/{self.spec.stage}"
        return f"https://{api_host}/{self.spec.stage}"

    def global_url(self) -> str:
        if self.spec.region_addresses:
            return f"http://{self.spec.domain.rstrip('.')}:{self.spec.data_plane_port}"
        return f"https://{self.spec.domain.rstrip('.')}"

    def run(self, templates: dict[str, dict[str, Any]]) -> dict[str, Any]:
        spec = self.spec
        account = self.call("sts GetCallerIdentity",
                            self.client("sts", spec.regions[0]).get_caller_identity)["Account"]
        code = package_functions(Path(spec.functions_dir) if spec.functions_dir else FUNCTIONS_DIR)

        zone_id = spec.hosted_zone_id
        if zone_id is not None:
            self.check_zone(zone_id)
        if zone_id is None:
            zone_out = self.create_stack("zone", ROUTE53_STACK_REGION, self.stack_name("zone"), templates["zone"],
                                         {"ZoneName": spec.zone.rstrip(".") + "."})
            zone_id = zone_out["HostedZoneId"]
        zone_id = zone_id.split("/")[-1]

        if spec.table_version == "2019.11.21":
            self.create_stack("global_table", spec.regions[0], self.stack_name("global_table"),
                              with_replicas(templates["global_table"], spec.regions, spec.witness),
                              {"TableName": spec.table_name, "MultiRegionConsistency": spec.consistency})

        regional: dict[str, dict[str, str]] = {}
        for region in spec.regions:
            bucket, key = self.upload_code(region, account, code)
            regional[region] = self.create_stack("regional", region, self.stack_name("regional", region),
                                                 templates["regional"], {
                                                     "CodeBucket": bucket, "CodeKey": key,
                                                     "TableName": spec.table_name,
                                                     "TableVersion": spec.table_version,
                                                     "FunctionPrefix": spec.function_prefix,
                                                     "StageName": spec.stage,
                                                     "HealthCheckDepth": spec.health_depth,
                                                     "HealthCheckMaxAge": f"{spec.health_max_age_s:g}",
                                                 })

        if spec.table_version == "2017.11.29":
            self.create_legacy_global_table()

        lease: dict[str, str] | None = None
        if "lease" in templates:
            out = self.create_stack("lease", spec.regions[0], self.stack_name("lease"), templates["lease"],
                                    {"TableName": f"{spec.stack_prefix}-leases"})
            lease = {"table": out["LeaseTableName"], "region": spec.regions[0]}

        domains: dict[str, dict[str, str]] = {}
        if spec.custom_domain:
            for region in spec.regions:
                domains[region] = self.create_stack(
                    "regional_domain", region, self.stack_name("regional_domain", region),
                    templates["regional_domain"], {
                        "DomainName": spec.domain.rstrip("."), "RestApiId": regional[region]["ApiId"],
                        "StageName": spec.stage, "HostedZoneId": zone_id,
                    })

        described_regions = []
        for index, region in enumerate(spec.regions):
            out = regional[region]
            role = ("PRIMARY" if index == 0 else "SECONDARY") if spec.routing == "failover" else "NONE"
            alias = {"RegionalDomainName": domains[region]["RegionalDomainName"],
                     "RegionalHostedZoneId": domains[region]["RegionalHostedZoneId"]} if spec.custom_domain else {}
            if spec.custom_domain and role == "NONE":
                role_param = "PRIMARY"   # routing-alias.yaml allows only real roles; unused with latency
            else:
                role_param = role
            routing = self.create_stack("routing", ROUTE53_STACK_REGION, self.stack_name("routing", region),
                                        templates["routing_alias" if spec.custom_domain else "routing"], {
                                            **alias,
                                            "Region": region, "ApiHost": out["ApiHost"],
                                            "HealthPath": f"/{spec.stage}/health",
                                            "HostedZoneId": zone_id,
                                            "DomainName": spec.domain.rstrip(".") + ".",
                                            "Routing": spec.routing, "FailoverRole": role_param,
                                            "CheckType": spec.check_type, "CheckPort": spec.check_port,
                                            "RequestInterval": spec.request_interval,
                                            "FailureThreshold": spec.failure_threshold,
                                            "RecordTtl": spec.record_ttl_s,
                                            "RecordType": records_of(spec).upper(),
                                        })
            entry: dict[str, Any] = {
                "name": region,
                "api_url": self.api_url(region, out["ApiHost"]),
                "api_host": out["ApiHost"],
                "api_id": out["ApiId"],
                "functions": {"put": out["PutFunctionName"], "get": out["GetFunctionName"],
                              "health": out["HealthFunctionName"]},
                "health_check_id": routing["HealthCheckId"],
            }
            if region in spec.region_addresses:
                entry["client_address"] = spec.region_addresses[region]
            if spec.custom_domain:
                entry["regional_domain_name"] = domains[region]["RegionalDomainName"]
            if spec.routing == "failover":
                entry["failover_role"] = role
            described_regions.append(entry)

        if spec.routing == FAILOVER_PAIRS:
            partners = pairs_of(spec)
            checks = {entry["name"]: entry["health_check_id"] for entry in described_regions}
            for entry in described_regions:
                region, partner = entry["name"], partners[entry["name"]]
                self.create_stack("pair_failover", ROUTE53_STACK_REGION, self.stack_name("pair_failover", region),
                                  templates["pair_failover"], {
                                      "Region": region, "PartnerRegion": partner, "HostedZoneId": zone_id,
                                      "DomainName": spec.domain.rstrip(".") + ".",
                                      "RegionalDomainName": domains[region]["RegionalDomainName"],
                                      "RegionalHostedZoneId": domains[region]["RegionalHostedZoneId"],
                                      "HealthCheckId": checks[region],
                                      "PartnerRegionalDomainName": domains[partner]["RegionalDomainName"],
                                      "PartnerRegionalHostedZoneId": domains[partner]["RegionalHostedZoneId"],
                                      "PartnerHealthCheckId": checks[partner],
                                  })
                entry["failover_partner"] = partner

        description: dict[str, Any] = {
            "gameday_deployment": 1,
            "target": "local" if spec.aws_endpoint_url else "aws",
        }
        if spec.aws_endpoint_url:
            description["aws_endpoint_url"] = spec.aws_endpoint_url
        if spec.control_url:
            description["control_url"] = spec.control_url
        description.update({
            "time_scale": spec.time_scale,
            "domain": spec.domain.rstrip("."),
            "global_url": self.global_url(),
            "dns_resolver": spec.dns_resolver,
            "hosted_zone_id": zone_id,
            "routing": spec.routing,
            "record_ttl_s": spec.record_ttl_s,
            "table": {"name": spec.table_name, "version": spec.table_version,
                      "region_attribute": REGION_ATTRIBUTE[spec.table_version]},
            "regions": described_regions,
        })
        if lease is not None:
            description["lease"] = lease
        return description


def provision(spec: ProvisionSpec, session_factory: SessionFactory, hooks: StackHook | None = None) -> dict[str, Any]:
    """Deploy the stacks and return the deployment description.

    UsageError (before any AWS call) for bad input; ProvisionError naming the stack and the
    reason when a stack or call fails."""
    templates = validate(spec)
    return _Provisioner(spec, session_factory, hooks).run(templates)


def teardown(spec: ProvisionSpec, session_factory: SessionFactory, on_deleted: DeleteHook | None = None) -> list[str]:
    """Delete what provision() created (routing, regional, global table, zone stacks and the code
    buckets), waiting for each deletion. Missing stacks are skipped. `on_deleted` (local cloud:
    CfnSupplements.deleted) removes what moto's CloudFormation leaves behind.
    Returns the deleted stack names."""
    if not spec.regions:
        raise UsageError("regions: expected at least one region")
    try:
        return _teardown(spec, _Provisioner(spec, session_factory, None), on_deleted)
    except BotoCoreError as exc:  # no connection, no credentials: one line, not a traceback
        raise ProvisionError(f"teardown: {exc}") from None


def _teardown(spec: ProvisionSpec, worker: _Provisioner, on_deleted: DeleteHook | None) -> list[str]:
    # The pairs' records name the routing stacks' health checks: they go first.
    plan = [("pair_failover", ROUTE53_STACK_REGION, worker.stack_name("pair_failover", r))
            for r in spec.regions] if spec.routing == FAILOVER_PAIRS else []
    plan += [("routing", ROUTE53_STACK_REGION, worker.stack_name("routing", r)) for r in spec.regions]
    if spec.custom_domain:
        plan += [("regional_domain", r, worker.stack_name("regional_domain", r)) for r in spec.regions]
    plan += [("regional", r, worker.stack_name("regional", r)) for r in spec.regions]
    plan.append(("global_table", spec.regions[0], worker.stack_name("global_table")))
    plan.append(("lease", spec.regions[0], worker.stack_name("lease")))
    if spec.hosted_zone_id is None or worker.made_zone(spec.hosted_zone_id):
        plan.append(("zone", ROUTE53_STACK_REGION, worker.stack_name("zone")))
    if spec.table_version == "2017.11.29":
        worker.remove_legacy_replicas()  # AWS refuses to delete a table that is still a replica
    deleted = []
    for kind, region, name in plan:
        cfn = worker.client("cloudformation", region)
        try:
            stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        except IndexError:
            continue
        except ClientError as exc:
            if "does not exist" in str(exc):
                continue  # never created
            err = exc.response.get("Error", {})
            raise ProvisionError(f"stack {name} ({region}): {err.get('Code', 'Error')}: {err.get('Message', exc)}") from None
        if stack["StackStatus"] == "DELETE_COMPLETE":
            continue  # already gone
        gone = None
        if on_deleted is not None:
            body = worker.call(f"stack {name} ({region})", cfn.get_template, StackName=name)["TemplateBody"]
            listed = worker.call(f"stack {name} ({region})", cfn.list_stack_resources, StackName=name)
            gone = DeletedStack(kind=kind, region=region, stack_name=name, stack_id=stack["StackId"],
                                template=body if isinstance(body, dict) else json.loads(body),
                                physical_ids={r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
                                              for r in listed["StackResourceSummaries"] if "LogicalResourceId" in r})
        worker.call(f"delete stack {name} ({region})", cfn.delete_stack, StackName=name)
        worker.wait(cfn, name, region, "DELETE_COMPLETE")
        if gone is not None and on_deleted is not None:
            on_deleted(gone)
        deleted.append(name)
    account = worker.call("sts GetCallerIdentity", worker.client("sts", spec.regions[0]).get_caller_identity)["Account"]
    for region in spec.regions:
        s3 = worker.client("s3", region)
        bucket = f"{spec.stack_prefix}-code-{account}-{region}".lower()
        try:
            listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        except ClientError:
            continue
        for obj in listed:
            worker.call(f"delete s3://{bucket}/{obj['Key']}", s3.delete_object, Bucket=bucket, Key=obj["Key"])
        worker.call(f"delete bucket {bucket}", s3.delete_bucket, Bucket=bucket)
    return deleted
