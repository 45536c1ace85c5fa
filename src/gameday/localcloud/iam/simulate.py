"""iam:SimulatePrincipalPolicy, which moto does not serve: the policies of a user, role or group
(PolicySourceArn; a user's include its groups', and its permissions boundary counts) evaluated for
each action on each resource with decision.py, the decision a real call of that principal gets.

The answer has AWS's shape (query protocol, XML): one EvaluationResult per action whose
EvalDecision is the most restrictive over the resources, each resource's own decision in
ResourceSpecificResults (when ResourceArns were given), paginated by MaxItems/Marker. The context
holds only the ContextEntries given, as in the simulator; MatchedStatements are not reported.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any
from xml.sax.saxutils import escape

from gameday.localcloud.iam import responses
from gameday.localcloud.iam.decision import decide
from gameday.localcloud.iam.principals import NoSuchEntity, Principals
from gameday.localcloud.iam.resources import call_from_environ, member_lists, query_params, read_body

ACTION = "SimulatePrincipalPolicy"
NAMESPACE = responses.QUERY_NAMESPACES["iam"]
_RANK = {"allowed": 0, "implicitDeny": 1, "explicitDeny": 2}
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found"}


class InvalidInput(Exception):
    """A parameter AWS would refuse (InvalidInput, 400)."""


def answer(params: Mapping[str, Any], principals: Principals) -> responses.Response:
    """The response to one SimulatePrincipalPolicy request."""
    try:
        source, actions, resources, explicit, context, start, size = _request(params)
        principal = principals.entity(source)
    except InvalidInput as exc:
        return responses.query_error("iam", "InvalidInput", str(exc), 400)
    except NoSuchEntity as exc:
        return responses.query_error("iam", "NoSuchEntity", f"The entity with ARN {exc} cannot be found.", 404)
    extra = member_lists(params, "PolicyInputList")
    if extra:
        principal.documents = [*principal.documents, *extra]
    boundary = member_lists(params, "PermissionsBoundaryPolicyInputList")
    if boundary:
        principal.boundary = boundary
    results = []
    for action in actions[start:start + size]:
        decisions = [(resource, decide(principal, action, resource, context).decision) for resource in resources]
        results.append(_result(action, decisions, explicit))
    truncated = start + size < len(actions)
    marker = f"<Marker>{start + size}</Marker>" if truncated else ""
    body = (f'<SimulatePrincipalPolicyResponse xmlns="{NAMESPACE}"><SimulatePrincipalPolicyResult>'
            f"<IsTruncated>{str(truncated).lower()}</IsTruncated>{marker}"
            f"<EvaluationResults>{''.join(results)}</EvaluationResults></SimulatePrincipalPolicyResult>"
            f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
            f"</SimulatePrincipalPolicyResponse>").encode()
    return 200, [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))], body


def _request(params: Mapping[str, Any]) -> tuple[str, list[str], list[str], bool, dict[str, Any], int, int]:
    source = str(params.get("PolicySourceArn") or "")
    if not source.startswith("arn:"):
        raise InvalidInput("PolicySourceArn: expected the ARN of a user, group or role")
    actions = member_lists(params, "ActionNames")
    if not actions:
        raise InvalidInput("ActionNames: expected at least one action")
    resources = member_lists(params, "ResourceArns")
    try:
        size = int(params.get("MaxItems") or 100)
        start = int(params.get("Marker") or 0)
    except ValueError:
        raise InvalidInput("MaxItems and Marker: expected the values a previous page gave") from None
    if not 1 <= size <= 1000 or start < 0:
        raise InvalidInput("MaxItems: expected 1 to 1000")
    return source, actions, resources or ["*"], bool(resources), _context(params), start, size


def _context(params: Mapping[str, Any]) -> dict[str, Any]:
    """ContextEntries.member.N.{ContextKeyName, ContextKeyValues.member.M, ContextKeyType}."""
    context: dict[str, Any] = {}
    n = 1
    while f"ContextEntries.member.{n}.ContextKeyName" in params:
        prefix = f"ContextEntries.member.{n}"
        values = member_lists(params, f"{prefix}.ContextKeyValues")
        kind = str(params.get(f"{prefix}.ContextKeyType") or "string")
        context[str(params[f"{prefix}.ContextKeyName"])] = values if kind.endswith("List") else (values[:1] or [""])[0]
        n += 1
    return context


def _result(action: str, decisions: list[tuple[str, str]], explicit: bool) -> str:
    overall = max((decision for _, decision in decisions), key=_RANK.__getitem__)
    name = f"<EvalResourceName>{escape(decisions[0][0])}</EvalResourceName>" if len(decisions) == 1 else ""
    specific = ""
    if explicit:
        specific = "<ResourceSpecificResults>" + "".join(
            f"<member><EvalResourceName>{escape(resource)}</EvalResourceName>"
            f"<EvalResourceDecision>{decision}</EvalResourceDecision><MatchedStatements/>"
            f"<MissingContextValues/></member>" for resource, decision in decisions) + "</ResourceSpecificResults>"
    return (f"<member><EvalActionName>{escape(action)}</EvalActionName>{name}<EvalDecision>{overall}</EvalDecision>"
            f"<MatchedStatements/><MissingContextValues/>{specific}</member>")


class SimulatorApp:
    """WSGI: answers SimulatePrincipalPolicy, hands every other request to the application (moto)."""

    def __init__(self, app: Callable[..., Any], principals: Principals) -> None:
        self._app = app
        self._principals = principals

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if "/iam/aws4_request" not in str(environ.get("HTTP_AUTHORIZATION", "")):
            return self._app(environ, start_response)   # IAM requests are signed for the service "iam"
        body = read_body(environ)
        wanted = f"Action={ACTION}"
        if wanted.encode() not in body and wanted not in str(environ.get("QUERY_STRING", "")):
            return self._app(environ, start_response)
        params = query_params(call_from_environ(environ, body))
        if params.get("Action") != ACTION:
            return self._app(environ, start_response)
        status, headers, data = answer(params, self._principals)
        start_response(f"{status} {_REASONS.get(status, 'Error')}", headers)
        return [data]
