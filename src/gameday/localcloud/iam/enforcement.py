"""IAM enforcement: every request signed by an IAM user's or an assumed role's keys is authorised
against that principal's policies, with the request's real action and resource ARNs, before moto
serves it. The account root (the dummy keys, unsigned requests) is not restricted, as on AWS.

The decision itself is decision.py's (the same one iam:SimulatePrincipalPolicy gives, simulate.py).
sts:GetCallerIdentity is always allowed (AWS: no permission is needed, and a Deny does not apply).

Signatures are not verified: the key id names the principal (and a session's token must match);
the local cloud listens on loopback only, and its handlers' in-process calls are not signed at all.

Switch: process-wide (moto's IAM and STS state is process-wide too). On unless the environment
has GAMEDAY_LOCAL_IAM=off; AwsEndpoint(iam=...) and the control route /_gameday/iam
(GET; POST {"enforce": true|false}) change it at run time.
"""

from __future__ import annotations

import datetime
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from gameday.localcloud.iam import responses, simulate
from gameday.localcloud.iam.decision import decide
from gameday.localcloud.iam.principals import InvalidClientToken, Principal, Principals, issued_here
from gameday.localcloud.iam.resources import Call, Operation, call_from_environ, identify, read_body
from gameday.localcloud.motoglue import patches

ENV_SWITCH = "GAMEDAY_LOCAL_IAM"

MOTO_AUTH_COUNT = patches.declare(
    "moto.settings:INITIAL_NO_AUTH_ACTION_COUNT", kind="replace",
    why="moto's own enforcement (authorised against resource '*' only, and refusing the dummy root keys) "
        "stays off whatever the environment says; this package enforces IAM instead")
MANAGED_POLICIES = patches.declare(
    "moto.iam.models:IAMBackend._init_managed_policies", kind="replace",
    signature="(self) -> 'dict[str, ManagedPolicy]'",
    why="AWS managed policies (AWSLambdaBasicExecutionRole, ...) attachable as on AWS, loaded from moto's "
        "data on first use instead of never (moto's default) or at every IAM backend's creation (~0.2 s)")

ROLE_FROM_TEMPLATE = patches.declare(
    "moto.iam.models:Role.create_from_cloudformation_json", kind="wrap",
    signature="(resource_name: 'str', cloudformation_json: 'dict[str, Any]', account_id: 'str', "
              "region_name: 'str', **kwargs: 'Any') -> 'Role'",
    why="moto ignores AWS::IAM::Role ManagedPolicyArns; CloudFormation attaches them (the reference "
        "template's AWSLambdaBasicExecutionRole), and their statements count when the role is authorised")

ROLE_DELETE_FROM_TEMPLATE = patches.declare(
    "moto.iam.models:Role.delete_from_cloudformation_json", kind="wrap",
    signature="(resource_name: 'str', cloudformation_json: 'dict[str, Any]', account_id: 'str', "
              "region_name: 'str') -> 'None'",
    why="CloudFormation detaches the ManagedPolicyArns it attached before deleting the role (one attached "
        "out of band still makes the deletion fail, DeleteConflict, as on AWS)")


class _Switch:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.enabled = os.environ.get(ENV_SWITCH, "on").strip().lower() not in ("off", "0", "false", "no")

    def set(self, enabled: bool) -> None:
        with self._lock:
            self.enabled = bool(enabled)


SWITCH = _Switch()
PRINCIPALS = Principals()


def enabled() -> bool:
    return SWITCH.enabled


def set_enabled(value: bool) -> None:
    SWITCH.set(value)


# --- credentials on a request ---

def credential(call: Call) -> tuple[str, str, str, str | None] | None:
    """(access key id, region, signing name, session token) from the SigV4 Authorization header or a
    presigned URL; None when the request is not signed with SigV4."""
    scope = ""
    auth = call.header("authorization") or ""
    if "Credential=" in auth:
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0].strip()
        token = call.header("x-amz-security-token")
    else:
        values = call.query.get("X-Amz-Credential")
        if not values:
            return None
        scope = unquote(values[0])
        token = (call.query.get("X-Amz-Security-Token") or [call.header("x-amz-security-token") or ""])[0]
    parts = scope.split("/")
    if len(parts) < 4:
        return None
    return parts[0], parts[2], parts[3], token or None


# --- the decision ---

def _context(principal: Principal, operation: Operation, call: Call) -> dict[str, Any]:
    now = time.time()
    context: dict[str, Any] = {
        "aws:RequestedRegion": operation.region,
        "aws:PrincipalArn": principal.principal_arn or principal.arn,
        "aws:PrincipalAccount": principal.account,
        "aws:PrincipalType": principal.kind,
        "aws:userid": principal.user_id,
        "aws:SourceIp": call.source_ip,
        "aws:SecureTransport": "false",
        "aws:CurrentTime": datetime.datetime.fromtimestamp(now, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "aws:EpochTime": str(int(now)),
        "aws:ViaAWSService": "false",
    }
    if principal.username:
        context["aws:username"] = principal.username
    return context


def refusal_message(principal: Principal, action: str, resource: str) -> str | None:
    """AWS's AccessDenied message for the principal, or None if the request is allowed."""
    return decide(principal, action, resource, {}).message


def authorise(call: Call) -> responses.Response | None:
    """None when the request may proceed; otherwise the refusal to send back."""
    if not SWITCH.enabled:
        return None
    found = credential(call)
    if found is None:
        return None
    key, region, signing_name, token = found
    if not issued_here(key):
        return None  # the account root's dummy keys: unrestricted
    try:
        principal = PRINCIPALS.resolve(key, token)
    except InvalidClientToken:
        operation = identify(call, signing_name, region)
        return responses.invalid_token(operation.protocol, operation.service, operation.query_compatible)
    if principal is None:
        return None
    operation = identify(call, signing_name, region)
    if operation.service == "sts" and operation.name == "GetCallerIdentity":
        return None
    context = _context(principal, operation, call)
    for target in operation.targets:
        message = decide(principal, target.action, target.resource, context).message
        if message is not None:
            return responses.access_denied(operation.protocol, operation.service, message, operation.query_compatible)
    return None


def authorise_prepared(request: Any) -> responses.Response | None:
    """authorise() for a botocore prepared request served in process (never over a socket)."""
    if not SWITCH.enabled:
        return None
    parts = urlsplit(request.url)
    headers = {str(k).lower(): (v.decode("latin-1") if isinstance(v, bytes) else str(v))
               for k, v in request.headers.items()}
    body = request.body
    if hasattr(body, "read"):
        body = body.read()
    if isinstance(body, str):
        body = body.encode("utf-8")
    call = Call(method=str(request.method).upper(), path=unquote(parts.path or "/"),
                query=parse_qs(parts.query, keep_blank_values=True), headers=headers, body=body or b"")
    return authorise(call)


# --- the Lambda runtime's side ---

def execution_credentials(role_arn: str, function_name: str, region: str) -> tuple[str, str, str]:
    """The keys a function's handler runs with: a session of its execution role, as Lambda gives
    (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)."""
    return PRINCIPALS.execution_session(role_arn, function_name, region)


# --- in front of moto ---

_REASONS = {400: "Bad Request", 403: "Forbidden"}


class IamMiddleware:
    """WSGI: authorises each request before the application (moto, with SimulatePrincipalPolicy
    answered here) sees it."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self._app = simulate.SimulatorApp(app, PRINCIPALS)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if not SWITCH.enabled or not _maybe_enforced(environ):
            return self._app(environ, start_response)
        body = read_body(environ)
        refusal = authorise(call_from_environ(environ, body))
        if refusal is None:
            return self._app(environ, start_response)
        status, headers, data = refusal
        start_response(f"{status} {_REASONS.get(status, 'Error')}", headers)
        return [data]


def _maybe_enforced(environ: Mapping[str, Any]) -> bool:
    """Cheap test before reading anything: is the request signed with a key this cloud's IAM issued?"""
    auth = str(environ.get("HTTP_AUTHORIZATION", ""))
    if "Credential=" in auth:
        return issued_here(auth.split("Credential=", 1)[1].split("/", 1)[0].strip())
    query = str(environ.get("QUERY_STRING", ""))
    if "X-Amz-Credential=" in query:
        values = parse_qs(query).get("X-Amz-Credential") or [""]
        return issued_here(values[0].split("/", 1)[0])
    return False


# --- installation (before the endpoint serves its first request) ---

class _AwsManagedPolicies(dict[str, Any]):
    """An IAM backend's managed policies with AWS's own added on first read."""

    def __init__(self, backend: Any) -> None:
        super().__init__()
        self._backend: Any = backend
        self._loaded = False
        self._lock = threading.Lock()

    def _load(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            policies = list(getattr(self._backend, "aws_managed_policies", []) or [])
            if not policies:
                import json

                from moto.iam.aws_managed_policies import aws_managed_policies_data
                from moto.iam.models import AWSManagedPolicy

                policies = [AWSManagedPolicy.from_data(name, self._backend.account_id, self._backend.region_name, data)
                            for name, data in json.loads(aws_managed_policies_data).items()]
            for managed in policies:
                dict.setdefault(self, managed.arn, managed)

    def __getitem__(self, key: Any) -> Any:
        self._load()
        return dict.__getitem__(self, key)

    def __contains__(self, key: object) -> bool:
        self._load()
        return dict.__contains__(self, key)

    def __iter__(self) -> Any:
        self._load()
        return dict.__iter__(self)

    def __len__(self) -> int:
        self._load()
        return dict.__len__(self)

    def get(self, key: Any, default: Any = None) -> Any:
        self._load()
        return dict.get(self, key, default)

    def keys(self) -> Any:
        self._load()
        return dict.keys(self)

    def values(self) -> Any:
        self._load()
        return dict.values(self)

    def items(self) -> Any:
        self._load()
        return dict.items(self)

    def pop(self, key: Any, *default: Any) -> Any:
        self._load()
        return dict.pop(self, key, *default)


def _lazy_managed_policies(backend: Any) -> dict[str, Any]:
    return _AwsManagedPolicies(backend)


_TEMPLATE_ATTACHED: dict[str, set[str]] = {}  # role name -> managed policy ARNs its stack attached


def _role_with_managed_policies(create: Callable[..., Any]) -> Any:
    def create_from_cloudformation_json(resource_name: str, cloudformation_json: dict[str, Any], account_id: str,
                                        region_name: str, **kwargs: Any) -> Any:
        role = create(resource_name, cloudformation_json, account_id, region_name, **kwargs)
        from gameday.localcloud.motoglue import access as moto_access

        for arn in (cloudformation_json.get("Properties") or {}).get("ManagedPolicyArns") or []:
            moto_access.iam().attach_role_policy(str(arn), role.name)  # NoSuchEntity fails the stack, as on AWS
            _TEMPLATE_ATTACHED.setdefault(role.name, set()).add(str(arn))
        return role

    return staticmethod(create_from_cloudformation_json)


def _role_delete_detaching(delete: Callable[..., Any]) -> Any:
    def delete_from_cloudformation_json(resource_name: str, cloudformation_json: dict[str, Any], account_id: str,
                                        region_name: str) -> Any:
        from gameday.localcloud.motoglue import access as moto_access

        # What the stack attached, as resolved when it was created (moto passes the unresolved template here).
        iam = moto_access.iam()
        role = next((r for r in list(iam.roles.values()) if r.name == resource_name), None)
        for arn in sorted(_TEMPLATE_ATTACHED.pop(resource_name, set())):
            if role is not None and arn in role.managed_policies:
                iam.detach_role_policy(arn, resource_name)
        return delete(resource_name, cloudformation_json, account_id, region_name)

    return staticmethod(delete_from_cloudformation_json)


def install() -> None:
    """Idempotent. Keeps moto's own enforcement off and makes AWS managed policies attachable."""
    import moto.settings

    if not MOTO_AUTH_COUNT._applied:
        MOTO_AUTH_COUNT.apply(float("inf"))
    elif moto.settings.INITIAL_NO_AUTH_ACTION_COUNT != float("inf"):
        MOTO_AUTH_COUNT.apply(float("inf"))
    if not MANAGED_POLICIES._applied:
        MANAGED_POLICIES.apply(_lazy_managed_policies)
    if not ROLE_FROM_TEMPLATE._applied:
        ROLE_FROM_TEMPLATE.apply(_role_with_managed_policies(ROLE_FROM_TEMPLATE.original()))
    if not ROLE_DELETE_FROM_TEMPLATE._applied:
        ROLE_DELETE_FROM_TEMPLATE.apply(_role_delete_detaching(ROLE_DELETE_FROM_TEMPLATE.original()))


def control_routes(add: Callable[[str, str, Callable[[dict[str, str], Any], tuple[int, Any]]], None]) -> None:
    """GET /_gameday/iam -> {"enforce": bool}; POST {"enforce": bool} switches it."""

    def show(_query: dict[str, str], _body: Any) -> tuple[int, Any]:
        return 200, {"enforce": SWITCH.enabled}

    def change(_query: dict[str, str], body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("enforce"), bool):
            raise ValueError('expected {"enforce": true} or {"enforce": false}')
        SWITCH.set(body["enforce"])
        return 200, {"enforce": SWITCH.enabled}

    add("GET", "/_gameday/iam", show)
    add("POST", "/_gameday/iam", change)
