"""What a request asks for, in IAM's terms: the service, the operation, and for each resource the
IAM action and the resource ARN that a policy statement must match.

The operation is found from botocore's model of the service, as AWS's front end finds it from the
wire: the X-Amz-Target header (JSON protocols), the path /service/{target}/operation/{name}
(Smithy RPC v2 CBOR, what CloudWatch speaks now), the Action parameter (query protocols) or the
method and path against each operation's requestUri (REST protocols).

Resource ARNs follow each service's authorisation reference for the services the local cloud
serves and the harness calls: Lambda functions (qualified when the request names a qualifier),
Route 53 hosted zones, health checks and changes, DynamoDB tables, indexes, streams and global
tables, CloudWatch alarms and dashboards, IAM users, roles, groups and policies, STS roles,
CloudFormation stacks, API Gateway paths. Every other operation is authorised against "*", which a
statement scoped to an ARN does not match (hardest reading: denied).
"""

from __future__ import annotations

import functools
import io
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import botocore.session

from gameday.localcloud.motoglue import patches
from gameday.localcloud.process.context import ACCOUNT_ID

CBOR_PARSER = patches.declare(
    "botocore.parsers:RpcV2CBORParser._initial_body_parse", kind="call", signature="(self, body_contents)",
    why="reads the parameters (AlarmNames) of a CloudWatch request sent in Smithy RPC v2 CBOR")

# Signing name -> the botocore services it covers, and the IAM action prefix, where they differ.
_SERVICES_BY_SIGNING_NAME = {"monitoring": ("cloudwatch",), "dynamodb": ("dynamodb", "dynamodbstreams"),
                             "execute-api": (), "email": ("ses", "sesv2")}
_IAM_PREFIX = {"monitoring": "cloudwatch", "dynamodbstreams": "dynamodb", "email": "ses"}


@dataclass(frozen=True)
class Call:
    """One request as it arrived (path decoded, headers case-insensitive by lower-cased name)."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]   # lower-cased names
    body: bytes
    source_ip: str = "127.0.0.1"

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Target:
    """One action on one resource."""

    action: str
    resource: str


@dataclass
class Operation:
    """What the request asks for: `targets` each need an Allow."""

    service: str                  # IAM prefix: lambda, dynamodb, cloudwatch, ...
    name: str                     # the operation, e.g. GetFunctionConfiguration ("" if unrecognised)
    region: str
    params: dict[str, Any] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    protocol: str = "json"
    query_compatible: bool = False  # awsQueryCompatible: errors also carry the query error code


# --- finding the operation ---

@functools.lru_cache(maxsize=64)
def _model(service: str) -> Any:
    try:
        return botocore.session.get_session().get_service_model(service)
    except Exception:
        return None


@functools.lru_cache(maxsize=64)
def _rest_routes(service: str) -> list[tuple[str, re.Pattern[str], list[str], int, str]]:
    """(method, path regex, required query keys, specificity, operation name) for a REST service."""
    model = _model(service)
    routes: list[tuple[str, re.Pattern[str], list[str], int, str]] = []
    if model is None:
        return routes
    for name in model.operation_names:
        http = model.operation_model(name).http
        uri = http.get("requestUri", "/")
        path, _, query = uri.partition("?")
        pattern = ""
        literal = 0
        for piece in re.split(r"(\{[^}]+\})", path):
            if piece.startswith("{"):
                pattern += f"(?P<{_group(piece)}>.+)" if piece.endswith("+}") else f"(?P<{_group(piece)}>[^/]+)"
            else:
                pattern += re.escape(piece)
                literal += len(piece)
        if path.endswith("/") and path != "/":
            pattern += "?"
        required = [pair.split("=", 1)[0] for pair in query.split("&") if pair]
        routes.append((http.get("method", "GET"), re.compile(pattern + "/?"), required, literal + len(required), name))
    return routes


def _group(piece: str) -> str:
    return re.sub(r"\W", "_", piece.strip("{}+"))


def _json_body(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _cbor_body(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    from botocore.parsers import RpcV2CBORParser

    try:
        parsed = CBOR_PARSER.original()(RpcV2CBORParser(), body)
    except Exception:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def query_params(call: Call) -> dict[str, Any]:
    params: dict[str, Any] = {k: v[0] for k, v in call.query.items() if v}
    content_type = call.header("content-type") or ""
    if call.body and "json" not in content_type and "xml" not in content_type:
        try:
            form = parse_qs(call.body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            form = {}
        params.update({k: v[0] for k, v in form.items() if v})
    return params


def member_lists(params: Mapping[str, Any], name: str) -> list[str]:
    """Query-protocol list members: Name.member.1, Name.member.2, ... (or Name.1, ...)."""
    found = []
    for key, value in params.items():
        if key.startswith(f"{name}.member.") or re.fullmatch(rf"{re.escape(name)}\.\d+", key):
            found.append((int(key.rsplit(".", 1)[1]) if key.rsplit(".", 1)[1].isdigit() else 0, str(value)))
    return [value for _, value in sorted(found)]


def identify(call: Call, signing_name: str, region: str) -> Operation:
    """The operation and its targets. An operation that cannot be recognised has name "" and a
    single target naming the request (which no Allow but "*" or "{service}:*" matches)."""
    candidates = _SERVICES_BY_SIGNING_NAME.get(signing_name, (signing_name,))
    target_header = call.header("x-amz-target") or ""
    for service in candidates:
        model = _model(service)
        if model is None:
            continue
        prefix = _IAM_PREFIX.get(service, _IAM_PREFIX.get(signing_name, signing_name))
        found = _match(model, service, call, target_header)
        if found is not None:
            name, params, protocol = found
            operation = Operation(service=prefix, name=name, region=region, params=params, protocol=protocol,
                                  query_compatible="awsQueryCompatible" in model.metadata)
            operation.targets = _targets(operation, call)
            return operation
    prefix = _IAM_PREFIX.get(signing_name, signing_name)
    protocol = _protocol(_model(candidates[0]) if candidates else None)
    return Operation(service=prefix, name="", region=region, protocol=protocol,
                     targets=[Target(f"{prefix}:{call.method} {call.path}", "*")])


def _protocol(model: Any) -> str:
    if model is None:
        return "json"
    return str(model.metadata.get("protocol", "json"))


def _match(model: Any, service: str, call: Call, target_header: str) -> tuple[str, dict[str, Any], str] | None:
    protocols = list(model.metadata.get("protocols") or [model.metadata.get("protocol")])
    target_prefix = model.metadata.get("targetPrefix")
    cbor = re.fullmatch(r"/service/([^/]+)/operation/([^/]+)", call.path)
    if cbor and "smithy-rpc-v2-cbor" in protocols:
        if target_prefix is None or cbor.group(1) == target_prefix:
            name = cbor.group(2)
            if name in model.operation_names:
                return name, _cbor_body(call.body), "smithy-rpc-v2-cbor"
    if target_header and target_prefix and target_header.startswith(target_prefix + "."):
        name = target_header[len(target_prefix) + 1:]
        if name in model.operation_names:
            return name, _json_body(call.body), "json"
        return None
    if "query" in protocols or "ec2" in protocols:
        params = query_params(call)
        action = params.get("Action")
        if isinstance(action, str) and action in model.operation_names:
            return action, params, "query"
        if "query" in protocols and not {"rest-json", "rest-xml"} & set(protocols):
            return None
    if {"rest-json", "rest-xml"} & set(protocols):
        best: tuple[int, str, dict[str, Any]] | None = None
        for method, pattern, required, specificity, name in _rest_routes(service):
            if method != call.method:
                continue
            matched = pattern.fullmatch(call.path)
            if matched is None or any(key not in call.query for key in required):
                continue
            if best is None or specificity > best[0]:
                best = (specificity, name, {k: v for k, v in matched.groupdict().items()})
        if best is not None:
            params = {k: v[0] for k, v in call.query.items() if v}
            params.update(best[2])
            if "rest-json" in protocols:
                params.update({k: v for k, v in _json_body(call.body).items() if k not in params})
            return best[1], params, "rest-json" if "rest-json" in protocols else "rest-xml"
    return None


# --- resources per service ---

def _targets(operation: Operation, call: Call) -> list[Target]:
    builder = _BUILDERS.get(operation.service)
    resources = builder(operation, call) if builder is not None else ["*"]
    action = f"{operation.service}:{operation.name}"
    targets = []
    for resource in resources or ["*"]:
        if isinstance(resource, Target):
            targets.append(resource)
        else:
            targets.append(Target(action, resource))
    return targets


def lambda_function_arn(name: str, qualifier: str | None, region: str) -> str:
    """A function's ARN from any form Lambda accepts: name, name:qualifier, account:function:name,
    or a full ARN (with or without a qualifier)."""
    account = ACCOUNT_ID
    if name.startswith("arn:"):
        parts = name.split(":")
        region, account, name = parts[3], parts[4], parts[6] if len(parts) > 6 else ""
        if len(parts) > 7 and not qualifier:
            qualifier = parts[7]
    elif ":function:" in name:
        account, _, rest = name.partition(":function:")
        name, _, embedded = rest.partition(":")
        qualifier = qualifier or embedded or None
    elif ":" in name:
        name, _, embedded = name.partition(":")
        qualifier = qualifier or embedded or None
    arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
    return f"{arn}:{qualifier}" if qualifier else arn


def _lambda(operation: Operation, call: Call) -> list[Any]:
    params = operation.params
    if operation.name in ("TagResource", "UntagResource", "ListTags"):
        resource = str(params.get("Resource") or params.get("ARN") or "")
        return [resource] if resource else ["*"]
    function = params.get("FunctionName")
    if function:
        qualifier = params.get("Qualifier")
        return [lambda_function_arn(str(function), str(qualifier) if qualifier else None, operation.region)]
    if operation.name == "GetLayerVersion" and params.get("LayerName"):
        return [f"arn:aws:lambda:{operation.region}:{ACCOUNT_ID}:layer:{params['LayerName']}:{params.get('VersionNumber', '*')}"]
    return ["*"]


def _route53(operation: Operation, call: Call) -> list[Any]:
    params = operation.params
    if operation.name in ("ChangeTagsForResource", "ListTagsForResource"):
        kind, ident = params.get("ResourceType"), params.get("ResourceId")
        return [f"arn:aws:route53:::{kind}/{ident}"] if kind and ident else ["*"]
    if "HealthCheckId" in params:
        return [f"arn:aws:route53:::healthcheck/{params['HealthCheckId']}"]
    ident = params.get("Id") or params.get("HostedZoneId")
    if ident:
        ident = str(ident).rsplit("/", 1)[-1]
        kind = "change" if operation.name == "GetChange" else "hostedzone"
        if operation.name in ("GetDelegationSet", "DeleteReusableDelegationSet"):
            kind = "delegationset"
        if operation.name in ("GetTrafficPolicy", "DeleteTrafficPolicy", "UpdateTrafficPolicyComment"):
            kind = "trafficpolicy"
        return [f"arn:aws:route53:::{kind}/{ident}"]
    return ["*"]


def _dynamodb_table_arn(name: str, region: str) -> str:
    if name.startswith("arn:"):
        return name
    return f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{name}"


_TRANSACT_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                     "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}


def _dynamodb(operation: Operation, call: Call) -> list[Any]:
    params = operation.params
    region = operation.region
    if operation.name in ("BatchGetItem", "BatchWriteItem"):
        tables = list((params.get("RequestItems") or {}).keys())
        return [_dynamodb_table_arn(t, region) for t in tables] or ["*"]
    if operation.name in ("TransactWriteItems", "TransactGetItems"):
        targets = []
        for item in params.get("TransactItems") or []:
            for kind, body in (item or {}).items():
                if isinstance(body, dict) and body.get("TableName") and kind in _TRANSACT_ACTIONS:
                    targets.append(Target(f"dynamodb:{_TRANSACT_ACTIONS[kind]}",
                                          _dynamodb_table_arn(str(body["TableName"]), region)))
        return targets or ["*"]
    if params.get("GlobalTableName"):
        return [f"arn:aws:dynamodb::{ACCOUNT_ID}:global-table/{params['GlobalTableName']}"]
    if params.get("StreamArn"):
        return [str(params["StreamArn"])]
    if params.get("ResourceArn"):
        return [str(params["ResourceArn"])]
    if params.get("TableName"):
        arn = _dynamodb_table_arn(str(params["TableName"]), region)
        if params.get("IndexName") and operation.name in ("Query", "Scan"):
            arn += f"/index/{params['IndexName']}"
        return [arn]
    return ["*"]


def _cloudwatch(operation: Operation, call: Call) -> list[Any]:
    params = operation.params
    region = operation.region

    def alarm(name: str) -> str:
        return f"arn:aws:cloudwatch:{region}:{ACCOUNT_ID}:alarm:{name}"

    names = params.get("AlarmNames")
    if isinstance(names, list):
        return [alarm(str(n)) for n in names] or ["*"]
    listed = member_lists(params, "AlarmNames")
    if listed:
        return [alarm(n) for n in listed]
    if params.get("AlarmName"):
        return [alarm(str(params["AlarmName"]))]
    if params.get("DashboardName"):
        return [f"arn:aws:cloudwatch::{ACCOUNT_ID}:dashboard/{params['DashboardName']}"]
    if params.get("ResourceARN"):
        return [str(params["ResourceARN"])]
    return ["*"]


def _sts(operation: Operation, call: Call) -> list[Any]:
    role = operation.params.get("RoleArn")
    return [str(role)] if role else ["*"]


def _iam(operation: Operation, call: Call) -> list[Any]:
    params = operation.params
    from gameday.localcloud.motoglue import access as moto_access

    backend = moto_access.iam()
    for key, kind, table in (("RoleName", "role", "roles"), ("UserName", "user", "users"),
                             ("GroupName", "group", "groups"),
                             ("InstanceProfileName", "instance-profile", "instance_profiles")):
        name = params.get(key)
        if name:
            found = getattr(backend, table, {}).get(str(name))
            path = getattr(found, "path", "/") or "/"
            return [f"arn:aws:iam::{ACCOUNT_ID}:{kind}{path}{name}"]
    if params.get("PolicyArn"):
        return [str(params["PolicyArn"])]
    if params.get("PolicySourceArn"):  # SimulatePrincipalPolicy: the user, group or role simulated
        return [str(params["PolicySourceArn"])]
    return ["*"]


def _cloudformation(operation: Operation, call: Call) -> list[Any]:
    name = operation.params.get("StackName")
    if not name:
        return ["*"]
    name = str(name)
    if name.startswith("arn:"):
        return [name]
    from gameday.localcloud.motoglue import access as moto_access

    try:
        stacks = moto_access.cloudformation(operation.region).stacks
        for stack in list(stacks.values()):
            if getattr(stack, "name", None) == name and getattr(stack, "status", "") != "DELETE_COMPLETE":
                return [str(stack.stack_id)]
    except Exception:  # no backend yet: no such stack
        pass
    return [f"arn:aws:cloudformation:{operation.region}:{ACCOUNT_ID}:stack/{name}/*"]


def _apigateway(operation: Operation, call: Call) -> list[Any]:
    """API Gateway's management API is authorised per HTTP method on the resource path."""
    return [Target(f"apigateway:{call.method}", f"arn:aws:apigateway:{operation.region}::{call.path}")]


_BUILDERS: dict[str, Callable[[Operation, Call], list[Any]]] = {
    "lambda": _lambda, "route53": _route53, "dynamodb": _dynamodb, "cloudwatch": _cloudwatch,
    "sts": _sts, "iam": _iam, "cloudformation": _cloudformation, "apigateway": _apigateway,
}


def call_from_environ(environ: Mapping[str, Any], body: bytes) -> Call:
    headers = {k[5:].replace("_", "-").lower(): str(v) for k, v in environ.items() if k.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = str(environ["CONTENT_TYPE"])
    query = parse_qs(str(environ.get("QUERY_STRING", "")), keep_blank_values=True)
    return Call(method=str(environ.get("REQUEST_METHOD", "GET")).upper(), path=str(environ.get("PATH_INFO", "/")),
                query=query, headers=headers, body=body, source_ip=str(environ.get("REMOTE_ADDR", "127.0.0.1")))


def read_body(environ: dict[str, Any]) -> bytes:
    """The request body, read once and put back for the application behind."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length <= 0:
        return b""
    data = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(data)
    return bytes(data)
