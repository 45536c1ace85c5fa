"""The fault "impair the region's writes": an inline policy denying dynamodb:PutItem on the region's
table replica, put on the execution role of every function of the region that writes (PutItem and
Health: a deep health check writes too), so every write from the region fails as if its replica
refused them.

    with WriteImpairment(deployment, "eu-west-1", journal=journal): ...

Why a Deny on the roles and not a throttle: what a health check should notice is the region's write
path failing, whichever function writes; throttling PutItem stops only that function, and a deep
Health (another function) would still write. The Deny names the regional table ARN only, so the
other regions' writes and every read go on.

GetFunctionConfiguration (each function's Role) -> ListRolePolicies per role -> journal {role:
names} -> PutRolePolicy -> verify (a regional POST /item of a probe item answers 5xx) -> yield ->
restore: DeleteRolePolicy of exactly that policy, then each role's inline policies read as before.
A role that already holds a policy of that name is refused before any change.
"""

from __future__ import annotations

import json
import time
from typing import Any

from gameday.deployment import Deployment
from gameday.errors import GamedayError
from gameday.faults import route_probe
from gameday.faults.base import JournalledFault

FAULT_NAME = "write_impairment"
POLICY_NAME = "gameday-write-impairment"
WRITERS = ("put", "health")          # the functions of a region that write to its table
PROBE_NAME = "gameday-write-impairment-probe"


def deny_document(table_arn: str) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "GamedayWriteImpairment", "Effect": "Deny", "Action": "dynamodb:PutItem", "Resource": table_arn}]}


def role_name(role_arn: str) -> str:
    return role_arn.rsplit("/", 1)[-1]


def inline_policies(iam: Any, role: str) -> list[str]:
    names: list[str] = []
    for page in iam.get_paginator("list_role_policies").paginate(RoleName=role):
        names += page.get("PolicyNames", [])
    return sorted(names)


class WriteImpairment(JournalledFault):
    """Writes from `region` to its table replica denied, through its writing functions' roles."""

    fault_name = FAULT_NAME

    def __init__(self, deployment: Deployment, region: str, **kwargs: Any) -> None:
        super().__init__(deployment, region, **kwargs)
        self.function: str = self.region.functions.put
        self.functions = list(dict.fromkeys(getattr(self.region.functions, role) for role in WRITERS))
        self._roles: dict[str, str] | None = None    # role name -> role ARN

    def roles(self) -> dict[str, str]:
        """The writing functions' execution roles (one entry per distinct role)."""
        if self._roles is None:
            lam = self.clients.lambda_(self.region.name)
            arns = [lam.get_function_configuration(FunctionName=f)["Role"] for f in self.functions]
            self._roles = {role_name(arn): arn for arn in dict.fromkeys(arns)}
        return self._roles

    def table_arn(self) -> str:
        account = self.clients.account_id()
        return f"arn:aws:dynamodb:{self.region.name}:{account}:table/{self.deployment.table.name}"

    def describe(self) -> str:
        return f"dynamodb:PutItem denied to {', '.join(self.functions)}"

    def target(self) -> dict[str, Any]:
        return {"region": self.region.name, "function": self.function, "functions": self.functions,
                "roles": sorted(self.roles()), "policy": POLICY_NAME, "endpoint": self.clients.endpoint_url}

    def snapshot(self) -> dict[str, Any]:
        iam = self.clients.client("iam", self.region.name)
        before = {role: inline_policies(iam, role) for role in self.roles()}
        for role, names in before.items():
            if POLICY_NAME in names:
                raise GamedayError(f"{role}: already holds an inline policy {POLICY_NAME!r} (another run's "
                                   f"fault? `gameday restore`); nothing changed")
        return {"inline_policies": before}

    def change(self) -> dict[str, Any]:
        return {"inline_policy": POLICY_NAME, "deny": "dynamodb:PutItem"}

    def inject(self) -> None:
        iam = self.clients.client("iam", self.region.name)
        document = json.dumps(deny_document(self.table_arn()))
        for role in self.roles():
            iam.put_role_policy(RoleName=role, PolicyName=POLICY_NAME, PolicyDocument=document)

    def verify(self) -> None:
        """A regional POST /item of a probe item answers 5xx: the handler's write was refused."""
        body = {"id": int(time.time() * 1000) * 1000 + 999, "name": PROBE_NAME}
        route_probe.require_failing(
            self.deployment, self.region.name, "POST", "/item", body, poll_s=self.poll_s, budget_s=self.verify_budget_s,
            applied=f"{POLICY_NAME} denies dynamodb:PutItem to {', '.join(self.roles())}", evidence=self.verified)

    @staticmethod
    def restore_entry(entry: dict[str, Any], clients: Any) -> str:
        return restore_entry(entry, clients)


def restore_entry(entry: dict[str, Any], clients: Any) -> str:
    """Delete exactly the fault's inline policy from each journalled role; then every role's inline
    policies must read as journalled."""
    target = entry["target"]
    iam = clients.client("iam", target["region"])
    before: dict[str, list[str]] = entry["before"]["inline_policies"]
    removed = []
    for role, names in before.items():
        if POLICY_NAME in inline_policies(iam, role):
            iam.delete_role_policy(RoleName=role, PolicyName=POLICY_NAME)
            removed.append(role)
        final = inline_policies(iam, role)
        if final != sorted(names):
            raise GamedayError(f"{role}: inline policies read {final} after restore, expected {sorted(names)}")
    return f"{POLICY_NAME} deleted from {', '.join(removed)}" if removed else "already as before"
