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
    "test_blind_spot_put_throttled_health_ok": (("throttle_put", "failed"),),
    "test_replication_paused_then_resumed": (("replication_pause", "first"),),
}

#: The AWS actions of every game day (observation), and of each fault, as (action, resource kind).
OBSERVE_ACTIONS: tuple[tuple[str, str], ...] = (
    ("sts:GetCallerIdentity", "*"),
    ("route53:GetHealthCheck", "healthcheck"),
    ("route53:GetHealthCheckStatus", "healthcheck"),
    ("route53:TestDNSAnswer", "*"),
    ("route53:ListResourceRecordSets", "hostedzone"),
    ("dynamodb:GetItem", "table"),
    ("dynamodb:BatchGetItem", "table"),
    ("dynamodb:Query", "table"),
    ("dynamodb:DescribeTable", "table"),
)
#: A fault on a function reads its ARN and marks it (faults/marks.py) for as long as it is in place.
_MARK_ACTIONS = ("lambda:GetFunction", "lambda:ListTags", "lambda:TagResource", "lambda:UntagResource")
FAULT_ACTIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "flip_health": (("lambda:GetFunctionConfiguration", "health"), ("lambda:UpdateFunctionConfiguration", "health"),
                    *((action, "health") for action in _MARK_ACTIONS)),
    "throttle_put": (("lambda:GetFunctionConcurrency", "put"), ("lambda:PutFunctionConcurrency", "put"),
                     ("lambda:DeleteFunctionConcurrency", "put"), *((action, "put") for action in _MARK_ACTIONS)),
    "replication_pause": (),   # the local cloud's control endpoint, not an AWS API
}
LEASE_ACTIONS = ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:GetItem")


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


def arns(deployment: Deployment, account: str, partition: str = "aws") -> dict[str, Any]:
    """Resource ARNs by kind (table and functions per region)."""
    def fn(region: Region, name: str) -> str:
        return f"arn:{partition}:lambda:{region.name}:{account}:function:{name}"

    return {
        "table": {r.name: f"arn:{partition}:dynamodb:{r.name}:{account}:table/{deployment.table.name}"
                  for r in deployment.regions},
        "health": {r.name: fn(r, r.functions.health) for r in deployment.regions},
        "put": {r.name: fn(r, r.functions.put) for r in deployment.regions},
        "healthcheck": [f"arn:{partition}:route53:::healthcheck/{r.health_check_id}" for r in deployment.regions],
        "hostedzone": f"arn:{partition}:route53:::hostedzone/{deployment.hosted_zone_id}",
    }


def _fault_regions(spec: str, deployment: Deployment, failed: str | None) -> list[Region]:
    if spec == "all":
        return list(deployment.regions)
    if spec == "first":
        return [deployment.regions[0]]
    return [deployment.region(failed)] if failed else list(deployment.regions)


def actions_for(deployment: Deployment, account: str, faults: Iterable[tuple[str, str]],
                failed: str | None) -> list[tuple[str, str]]:
    """(action, resource ARN) for observing the deployment and for the given faults."""
    by_kind = arns(deployment, account)
    found: list[tuple[str, str]] = []
    for action, kind in OBSERVE_ACTIONS:
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
    if deployment.lease is not None:
        table = f"arn:aws:dynamodb:{deployment.lease.region}:{account}:table/{deployment.lease.table}"
        found += [(action, table) for action in LEASE_ACTIONS]
    for alarm in deployment.guardrails.stop_conditions.alarms:
        found.append(("cloudwatch:DescribeAlarms",
                      f"arn:aws:cloudwatch:{alarm.region}:{alarm.account_id or account}:alarm:{alarm.name}"))
    return list(dict.fromkeys(found))


def policy_document(actions: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """An IAM policy with one statement per action, listing its resources (least privilege)."""
    by_action: dict[str, list[str]] = {}
    for action, resource in actions:
        by_action.setdefault(action, [])
        if resource not in by_action[action]:
            by_action[action].append(resource)
    statements = []
    for action in sorted(by_action):
        resources = sorted(by_action[action])
        sid = "".join(part.capitalize() for part in action.replace(":", " ").split())
        statements.append({"Sid": sid, "Effect": "Allow", "Action": action,
                           "Resource": "*" if "*" in resources else (resources[0] if len(resources) == 1 else resources)})
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
            elif fault == "replication_pause":
                planned.append(PlannedFault(fault, region.name, deployment.table.name, "replication", "running",
                                            "paused (local cloud)"))
    return planned


def check_config(clients: Any, hc_id: str) -> CheckConfig:
    config = clients.route53().get_health_check(HealthCheckId=hc_id)["HealthCheck"]["HealthCheckConfig"]
    return CheckConfig(interval_s=float(config.get("RequestInterval", 30)), threshold=int(config.get("FailureThreshold", 3)))


def render(plans: Iterable[ScenarioPlan], preconditions: Mapping[str, str]) -> str:
    lines = ["preconditions:"] + [f"  ok  {name}: {detail}" for name, detail in preconditions.items()]
    for plan in plans:
        lines.append("")
        lines.append(f"{plan.scenario}" + (f" [{plan.failed_region}]" if plan.failed_region else ""))
        lines += ["  faults:"] + ([f"    {f.line()}" for f in plan.faults] or ["    (none)"])
        lines.append("  phases (AWS seconds, budget / expected):")
        lines += [f"    {p.name:<18} {p.budget_s:>7.0f} / {p.expected_s:>5.0f}" for p in plan.phases]
        lines.append("  AWS actions:")
        lines += [f"    {a}" for a in sorted({action for action, _ in plan.actions})]
    return "\n".join(lines)
