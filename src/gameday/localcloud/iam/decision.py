"""The one authorisation decision for a principal, an action and a resource, as AWS evaluates
policies for a principal in its own account: an explicit Deny in any identity-based policy,
permissions boundary or session policy refuses; otherwise the identity-based policies must allow,
and so must the boundary and the session policy when there is one. Requests (enforcement.py) and
iam:SimulatePrincipalPolicy (simulate.py) both ask it, so a simulation answers what a call gets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gameday.localcloud.iam import policy
from gameday.localcloud.iam.principals import Principal


@dataclass(frozen=True)
class Verdict:
    """One decision, in the simulator's words (allowed, explicitDeny, implicitDeny), with the
    AccessDenied message a refused request gets (None when allowed)."""

    decision: str
    message: str | None = None


ALLOWED = Verdict("allowed")


def decide(principal: Principal, action: str, resource: str, context: Mapping[str, Any]) -> Verdict:
    """The one evaluation: requests (authorise) and iam:SimulatePrincipalPolicy both use it."""
    request = policy.Request(action=action, resource=resource, context=context)
    head = f"User: {principal.arn} is not authorized to perform: {action} on resource: {resource}"
    layers: list[tuple[Iterable[Any], str, str]] = [(principal.documents, "an identity-based policy",
                                                     "no identity-based policy")]
    if principal.boundary is not None:
        layers.append((principal.boundary, "a permissions boundary", "no permissions boundary"))
    if principal.session is not None:
        layers.append((principal.session, "a session policy", "no session policy"))
    decisions = [(policy.evaluate(documents, request), deny_in, none_allows) for documents, deny_in, none_allows in layers]
    for decision, deny_in, _ in decisions:
        if decision is policy.Decision.DENY:
            return Verdict("explicitDeny", f"{head} with an explicit deny in {deny_in}")
    for decision, _, none_allows in decisions:
        if decision is not policy.Decision.ALLOW:
            return Verdict("implicitDeny", f"{head} because {none_allows} allows the {action} action")
    return ALLOWED
