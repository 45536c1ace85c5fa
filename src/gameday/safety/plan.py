"""What a game day will do, before it does it: the faults it injects (function, key, value before ->
after), the budget and expected length of each phase, and the AWS actions it calls on which
resources. `gameday plan` prints it, `gameday policy` turns the actions into an IAM policy.

A plan is built from the deployment description and read-only calls (GetFunctionConfiguration,
GetFunctionConcurrency, GetHealthCheck, DescribeTable): it changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gameday.deployment import Deployment, Region

#: What each catalog game day faults, by test function name: (fault, which regions).
#: "failed" is the failed region of the scenario, "all" every region.
CATALOG: dict[str, tuple[tuple[str, str], ...]] = {
    "test_region_failover": (("flip_health", "failed"),),
    "test_failover_under_load": (("flip_health", "failed"),),
    "test_latency_routing": (("flip_health", "failed"),),
    "test_all_regions_down": (("flip_health", "all"),),
    "test_blind_spot_writes_fail_health_checked": (("write_impairment", "failed"),),
    "test_replication_paused_then_resumed": (("replication_pause", "failed"),),
    "test_region_outage_under_load": (("region_outage", "failed"),),
    "test_strong_consistency_rpo_zero": (("region_outage", "failed"),),
}

#: What game days read, by purpose, as (action, resource kind). Each catalog game day calls exactly
#: the groups SCENARIO_OBSERVE names, so each statement of its policy is one it needs.
_HEALTH_CONFIG = (("route53:GetHealthCheck", "healthcheck"),)            # budgets from each check's timing
_ROUTE53_WATCH = (("route53:GetHealthCheckStatus", "healthcheck"),      # detection, recovery
                  ("route53:TestDNSAnswer", "*"),                       # what Route 53 answers
                  ("route53:ListResourceRecordSets", "hostedzone"))     # which answer is which region
_LANDING = (("dynamodb:GetItem", "table"), ("dynamodb:DescribeTable", "table"))   # where a write landed
_BULK_READ = (("dynamodb:BatchGetItem", "table"),)                      # acked writes read back in bulk
SCENARIO_OBSERVE: dict[str, tuple[tuple[str, str], ...]] = {
    "test_region_failover": _HEALTH_CONFIG + _ROUTE53_WATCH + _LANDING,
    "test_failover_under_load": _HEALTH_CONFIG + _ROUTE53_WATCH + _LANDING + _BULK_READ,
    "test_latency_routing": _HEALTH_CONFIG + _ROUTE53_WATCH,
    "test_all_regions_down": _HEALTH_CONFIG + _ROUTE53_WATCH,
    "test_blind_spot_writes_fail_health_checked": _HEALTH_CONFIG + _ROUTE53_WATCH,
    "test_replication_paused_then_resumed": _HEALTH_CONFIG + (("dynamodb:DescribeTable", "table"),) + _BULK_READ,
    "test_region_outage_under_load": _HEALTH_CONFIG + _ROUTE53_WATCH + _LANDING + _BULK_READ,
    "test_strong_consistency_rpo_zero": (("dynamodb:DescribeTable", "table"),) + _BULK_READ,
}
#: Every read of the public API: what a team's own game day (not in the catalog) may call.
OBSERVE_ACTIONS: tuple[tuple[str, str], ...] = (("sts:GetCallerIdentity", "*"),) + tuple(dict.fromkeys(
    _HEALTH_CONFIG + _ROUTE53_WATCH + _LANDING + _BULK_READ))
#: AWS authorises these without any permission (and a Deny does not apply): no statement, no simulation.
NO_PERMISSION_NEEDED = frozenset({"sts:GetCallerIdentity"})
#: A fault on a function reads its ARN and marks it (faults/marks.py) for as long as it is in place.
_MARK_ACTIONS = ("lambda:GetFunction", "lambda:ListTags", "lambda:TagResource", "lambda:UntagResource")
FAULT_ACTIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "flip_health": (("lambda:GetFunctionConfiguration", "health"), ("lambda:UpdateFunctionConfiguration", "health"),
                    *((action, "health") for action in _MARK_ACTIONS)),
    "throttle_put": (("lambda:GetFunctionConcurrency", "put"), ("lambda:PutFunctionConcurrency", "put"),
                     ("lambda:DeleteFunctionConcurrency", "put"), *((action, "put") for action in _MARK_ACTIONS)),
    "write_impairment": (("lambda:GetFunctionConfiguration", "put"), ("lambda:GetFunctionConfiguration", "health"),
                         ("iam:ListRolePolicies", "role"), ("iam:PutRolePolicy", "role"),
                         ("iam:DeleteRolePolicy", "role"), *((action, "put") for action in _MARK_ACTIONS)),
    "region_outage": tuple((action, role) for role in ("put", "get", "health") for action in (
        "lambda:GetFunctionConcurrency", "lambda:PutFunctionConcurrency", "lambda:DeleteFunctionConcurrency",
        *_MARK_ACTIONS)),
    "replication_pause": (),   # the local cloud's control endpoint, not an AWS API
}
#: The lease: taken (PutItem) and given back (DeleteItem) by every run, renewed (UpdateItem) by a run
#: that outlasts a heartbeat, read (GetItem) to name the holder when it is taken. One statement.
LEASE_ACTIONS = ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:GetItem")
LEASE_SID = "GamedayLease"


@dataclass(frozen=True)
class PlannedFault:
    fault: str
    region: str
    function: str
    key: str
    before: str
    after: str

    def line(self) -> str:
        return f"{self.fault}: {self.function} ({self.region}) {self.key}: {self.before} -> {self.after}"


@dataclass(frozen=True)
class PlannedPhase:
    name: str
    budget_s: float       # AWS seconds
    expected_s: float     # AWS seconds


@dataclass
class ScenarioPlan:
    scenario: str
    failed_region: str | None
    faults: list[PlannedFault] = field(default_factory=list)
    phases: list[PlannedPhase] = field(default_factory=list)
    actions: list[tuple[str, str]] = field(default_factory=list)   # (action, resource ARN)


@dataclass(frozen=True)
class CheckConfig:
    """A health check's timing, as GetHealthCheck gives it."""

    interval_s: float
    threshold: int


def scenario_faults(test_name: str) -> tuple[tuple[str, str], ...]:
    """The faults of a catalog game day (unknown game days, a team's own, plan no fault)."""
    return CATALOG.get(test_name, ())


def scenario_observation(test_name: str) -> tuple[tuple[str, str], ...]:
    """The reads of a catalog game day; a team's own game day may use any read of the public API."""
    found = SCENARIO_OBSERVE.get(test_name)
    return (("sts:GetCallerIdentity", "*"), *found) if found is not None else OBSERVE_ACTIONS


def plan_phases(check: CheckConfig, ttl_s: float) -> list[PlannedPhase]:
    """Budgets and expected lengths in AWS seconds: detection takes about interval x threshold and
    is given twice that plus one interval; DNS follows within the TTL; recovery likewise."""
    detect = check.interval_s * check.threshold
    return [
        PlannedPhase("steady state", budget_s=detect * 2 + check.interval_s, expected_s=0.0),
        PlannedPhase("inject + verify", budget_s=60.0, expected_s=5.0),
        PlannedPhase("detect", budget_s=detect * 2 + check.interval_s, expected_s=detect),
        PlannedPhase("DNS shift", budget_s=detect + ttl_s + check.interval_s, expected_s=check.interval_s),
        PlannedPhase("write + read back", budget_s=ttl_s + 30.0, expected_s=2.0),
        PlannedPhase("restore + recover", budget_s=detect * 2 + ttl_s + check.interval_s, expected_s=detect + ttl_s),
    ]


#: Game days whose steps are not the failover's: their phases, as (name, budget, expected) AWS seconds.
OWN_PHASES: dict[str, tuple[tuple[str, float, float], ...]] = {
    "test_strong_consistency_rpo_zero": (
        ("table consistency", 10.0, 0.0),
        ("conflicting writes from two regions", 60.0, 2.0),
        ("inject + verify", 60.0, 5.0),
        ("strong reads from the survivors", 30.0, 1.0),
        ("restore + region back", 60.0, 5.0),
    ),
}


def scenario_phases(test_name: str, check: CheckConfig, ttl_s: float) -> list[PlannedPhase]:
    """A catalog game day's phases: its own where it has them, else the failover's."""
    own = OWN_PHASES.get(test_name)
    if own is None:
        return plan_phases(check, ttl_s)
    return [PlannedPhase(name, budget_s=budget, expected_s=expected) for name, budget, expected in own]


def arns(deployment: Deployment, account: str, partition: str = "aws") -> dict[str, Any]:
    """Resource ARNs by kind (table and functions per region)."""
    def fn(region: Region, name: str) -> str:
        return f"arn:{partition}:lambda:{region.name}:{account}:function:{name}"

    return {
        "table": {r.name: f"arn:{partition}:dynamodb:{r.name}:{account}:table/{deployment.table.name}"
                  for r in deployment.regions},
        "health": {r.name: fn(r, r.functions.health) for r in deployment.regions},
        "put": {r.name: fn(r, r.functions.put) for r in deployment.regions},
        "get": {r.name: fn(r, r.functions.get) for r in deployment.regions},
        # the functions' execution roles: their names are known only from GetFunctionConfiguration
        "role": {r.name: f"arn:{partition}:iam::{account}:role/*" for r in deployment.regions},
        "healthcheck": [f"arn:{partition}:route53:::healthcheck/{r.health_check_id}" for r in deployment.regions],
        "hostedzone": f"arn:{partition}:route53:::hostedzone/{deployment.hosted_zone_id}",
    }


def _fault_regions(spec: str, deployment: Deployment, failed: str | None) -> list[Region]:
    if spec == "all":
        return list(deployment.regions)
    return [deployment.region(failed)] if failed else list(deployment.regions)


def lease_arn(deployment: Deployment, account: str) -> str | None:
    if deployment.lease is None:
        return None
    return f"arn:aws:dynamodb:{deployment.lease.region}:{account}:table/{deployment.lease.table}"


def actions_for(deployment: Deployment, account: str, faults: Iterable[tuple[str, str]],
                failed: str | None, observe: Iterable[tuple[str, str]] = OBSERVE_ACTIONS) -> list[tuple[str, str]]:
    """(action, resource ARN) for the reads `observe` names and for the given faults."""
    by_kind = arns(deployment, account)
    found: list[tuple[str, str]] = []
    for action, kind in observe:
        if kind == "*":
            found.append((action, "*"))
        elif kind == "healthcheck":
            found += [(action, arn) for arn in by_kind["healthcheck"]]
        elif kind == "hostedzone":
            found.append((action, by_kind["hostedzone"]))
        else:
            found += [(action, arn) for arn in by_kind[kind].values()]
    for fault, spec in faults:
        for region in _fault_regions(spec, deployment, failed):
            for action, kind in FAULT_ACTIONS[fault]:
                found.append((action, by_kind[kind][region.name]))
    table = lease_arn(deployment, account)
    if table is not None:
        found += [(action, table) for action in LEASE_ACTIONS]
    for alarm in deployment.guardrails.stop_conditions.alarms:
        found.append(("cloudwatch:DescribeAlarms",
                      f"arn:aws:cloudwatch:{alarm.region}:{alarm.account_id or account}:alarm:{alarm.name}"))
    return list(dict.fromkeys(found))


#: Actions granted in one statement: a change and its undo (so no policy allows a fault, or a fault's
#: mark, without what takes it away again), by statement id. The lease's actions share one too.
GRANTED_TOGETHER: dict[str, tuple[str, ...]] = {
    "GamedayFaultMark": ("lambda:TagResource", "lambda:UntagResource"),
    "GamedayThrottle": ("lambda:PutFunctionConcurrency", "lambda:DeleteFunctionConcurrency"),
    "GamedayWriteImpairment": ("iam:PutRolePolicy", "iam:DeleteRolePolicy"),
}
_TOGETHER_BY_ACTION = {action: sid for sid, actions in GRANTED_TOGETHER.items() for action in actions}


def policy_document(actions: Iterable[tuple[str, str]], lease: str | None = None) -> dict[str, Any]:
    """An IAM policy with one statement per action, listing its resources (least privilege), except
    that GRANTED_TOGETHER's actions, and the lease table's (`lease`, its ARN), share one. Actions
    that need no permission are left out. Every statement is one the run cannot do without."""
    grouped: dict[str, tuple[list[str], list[str]]] = {}   # sid -> (actions, resources)
    for action, resource in actions:
        if action in NO_PERMISSION_NEEDED:
            continue
        if lease is not None and resource == lease:
            sid = LEASE_SID
        else:
            sid = _TOGETHER_BY_ACTION.get(action) or "".join(
                part.capitalize() for part in action.replace(":", " ").split())
        names, resources = grouped.setdefault(sid, ([], []))
        names += [action] if action not in names else []
        resources += [resource] if resource not in resources else []
    statements: list[dict[str, Any]] = []
    for sid, (names, resources) in sorted(grouped.items(), key=lambda item: (item[0] == LEASE_SID, item[0])):
        listed = sorted(resources)
        statements.append({"Sid": sid, "Effect": "Allow", "Action": names[0] if len(names) == 1 else sorted(names),
                           "Resource": "*" if "*" in listed else (listed[0] if len(listed) == 1 else listed)})
    return {"Version": "2012-10-17", "Statement": statements}


def describe_faults(clients: Any, deployment: Deployment, faults: Iterable[tuple[str, str]],
                    failed: str | None) -> list[PlannedFault]:
    """Each fault with the value it will change, read now (read-only calls)."""
    planned = []
    for fault, spec in faults:
        for region in _fault_regions(spec, deployment, failed):
            lam = clients.client("lambda", region.name)
            if fault == "flip_health":
                env = lam.get_function_configuration(FunctionName=region.functions.health).get("Environment") or {}
                before = (env.get("Variables") or {}).get("status", "(absent)") if "Error" not in env else "(undecryptable)"
                planned.append(PlannedFault(fault, region.name, region.functions.health, "env status", str(before), "404"))
            elif fault == "throttle_put":
                got = lam.get_function_concurrency(FunctionName=region.functions.put)
                before = str(got.get("ReservedConcurrentExecutions", "none"))
                planned.append(PlannedFault(fault, region.name, region.functions.put, "reserved concurrency", before, "0"))
            elif fault == "write_impairment":
                planned.append(PlannedFault(fault, region.name, f"{region.functions.put}, {region.functions.health}",
                                            "execution roles' dynamodb:PutItem", "allowed",
                                            "denied (inline policy gameday-write-impairment)"))
            elif fault == "region_outage":
                for function in dict.fromkeys((region.functions.put, region.functions.get, region.functions.health)):
                    got = lam.get_function_concurrency(FunctionName=function)
                    before = str(got.get("ReservedConcurrentExecutions", "none"))
                    planned.append(PlannedFault(fault, region.name, function, "reserved concurrency", before, "0"))
            elif fault == "replication_pause":
                planned.append(PlannedFault(fault, region.name, deployment.table.name, "replication", "running",
                                            "paused (local cloud)"))
    return planned


def check_config(clients: Any, hc_id: str) -> CheckConfig:
    config = clients.route53().get_health_check(HealthCheckId=hc_id)["HealthCheck"]["HealthCheckConfig"]
    return CheckConfig(interval_s=float(config.get("RequestInterval", 30)), threshold=int(config.get("FailureThreshold", 3)))


# --- the permission check: iam:SimulatePrincipalPolicy for the caller, before any change ---

#: What `gameday plan` needs besides the run's policy to check it (never part of that policy).
SIMULATE_ACTION = "iam:SimulatePrincipalPolicy"


@dataclass(frozen=True)
class Refusal:
    action: str
    resource: str
    decision: str                 # implicitDeny | explicitDeny
    missing_context: tuple[str, ...] = ()   # condition keys the simulator was not given: undecided


def simulation_source(caller_arn: str) -> tuple[str | None, str]:
    """The IAM entity whose policies authorise the caller (GetCallerIdentity's Arn): a user as it is,
    an assumed-role session's role (arn:...:iam::ACCT:role/ROLE); None with the reason when the
    simulator has nothing to simulate (the root user, a federated user, a service)."""
    parts = caller_arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return None, f"the caller {caller_arn!r} is not an ARN"
    partition, service, account, resource = parts[1], parts[2], parts[4], parts[5]
    if service == "iam" and resource == "root":
        return None, "root credentials (no policy applies to the root user; run as an IAM role or user)"
    if service == "iam" and resource.startswith("user/"):
        return caller_arn, ""
    if service == "sts" and resource.startswith("assumed-role/") and resource.count("/") >= 2:
        return f"arn:{partition}:iam::{account}:role/{resource.split('/')[1]}", ""
    return None, f"the simulator cannot simulate {caller_arn} (only IAM users and roles)"


def simulation_batches(actions: Iterable[tuple[str, str]]) -> list[tuple[list[str], list[str]]]:
    """(action names, resource ARNs) per call: the simulator evaluates each action on each resource,
    so actions on the same resources share a call. ["*"] means no ResourceArns (the default)."""
    by_action: dict[str, list[str]] = {}
    for action, resource in actions:
        if action not in NO_PERMISSION_NEEDED:
            found = by_action.setdefault(action, [])
            found += [resource] if resource not in found else []
    by_resources: dict[tuple[str, ...], list[str]] = {}
    for action, resources in by_action.items():
        by_resources.setdefault(tuple(sorted(resources)), []).append(action)
    return [(names, list(resources)) for resources, names in by_resources.items()]


def refusals(results: Iterable[Mapping[str, Any]]) -> list[Refusal]:
    """Every (action, resource) an EvaluationResults list does not allow. Read per resource from
    ResourceSpecificResults when present (one result per action), else from the result itself
    (one result per action and resource, as the simulator answered before)."""
    found = []
    for result in results:
        action = str(result.get("EvalActionName", "?"))
        for detail in result.get("ResourceSpecificResults") or [result]:
            decision = str(detail.get("EvalResourceDecision") or detail.get("EvalDecision") or "implicitDeny")
            if decision != "allowed":
                found.append(Refusal(action, str(detail.get("EvalResourceName") or result.get("EvalResourceName")
                                                 or "*"), decision, tuple(detail.get("MissingContextValues") or ())))
    return found


def simulate(iam: Any, source: str, actions: Iterable[tuple[str, str]]) -> list[Refusal]:
    """The refusals of iam:SimulatePrincipalPolicy for `source` over `actions` (read-only)."""
    found: list[Refusal] = []
    for names, resources in simulation_batches(actions):
        request: dict[str, Any] = {"PolicySourceArn": source, "ActionNames": names}
        if resources != ["*"]:
            request["ResourceArns"] = resources
        for page in iam.get_paginator("simulate_principal_policy").paginate(**request):
            found += refusals(page.get("EvaluationResults") or [])
    return found


def render(plans: Iterable[ScenarioPlan], preconditions: Mapping[str, str]) -> str:
    lines = ["preconditions:"] + [f"  ok  {name}: {detail}" for name, detail in preconditions.items()]
    for plan in plans:
        lines.append("")
        lines.append(f"{plan.scenario}" + (f" [{plan.failed_region}]" if plan.failed_region else ""))
        lines += ["  faults:"] + ([f"    {f.line()}" for f in plan.faults] or ["    (none)"])
        lines.append("  phases (AWS seconds, budget / expected):")
        width = max((len(p.name) for p in plan.phases), default=18)
        lines += [f"    {p.name:<{width}} {p.budget_s:>7.0f} / {p.expected_s:>5.0f}" for p in plan.phases]
        lines.append("  AWS actions:")
        lines += [f"    {a}" for a in sorted({action for action, _ in plan.actions})]
    return "\n".join(lines)
