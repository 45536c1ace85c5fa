"""`gameday plan` (also `gameday run --dry-run`): resolve the deployment, check every precondition
with read-only calls, and print for each selected game day the faults it would inject, its phases'
budgets and the AWS actions it would call, and check with iam:SimulatePrincipalPolicy that the
caller may call each of them on its resource. It changes nothing.

A failing precondition, or a refused permission (naming the action and the resource), is one line,
exit 2. When the simulation itself is refused or impossible (root credentials), a warning says the
permissions were not checked, and the plan goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gameday.deployment import FAILOVER_PAIRS
from gameday.errors import UsageError
from gameday.observe import zone_records


def selected_tests(args: argparse.Namespace, deployment_path: Path) -> list[tuple[str, str | None]]:
    """(test function name, failed region) of every game day the run would select, from pytest's own
    collection with the run's selection (-k, -m, --fail-region, --scenarios, --no-catalog)."""
    import pytest

    from gameday.cli.run import loads_own_plugins, pytest_args_for_run, run_pytest

    collected: list[tuple[str, str | None]] = []

    class Collector:
        def pytest_collection_finish(self, session: pytest.Session) -> None:
            for item in session.items:
                callspec = getattr(item, "callspec", None)
                region = callspec.params.get("failed_region") if callspec is not None else None
                collected.append((getattr(item, "originalname", item.name), region))

    plan_args = argparse.Namespace(**{**vars(args), "deployment": str(deployment_path), "n": None})
    with _scratch() as scratch:
        argv = pytest_args_for_run(plan_args, scratch) + ["--collect-only"]
        listing = io.StringIO()
        with contextlib.redirect_stdout(listing):   # pytest's own listing of the items is not the plan
            code = run_pytest(argv, autoload=not loads_own_plugins(plan_args), plugins=[Collector()])
    if code not in (0, 5):
        last = [line for line in listing.getvalue().splitlines() if line.strip()][-1:] or ["?"]
        raise UsageError(f"plan: the selection could not be collected (pytest exit {int(code)}: {last[0]})")
    return collected


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="gameday-plan-") as folder:
        yield Path(folder)


def _client_call(what: str, fn: Any, **kwargs: Any) -> Any:
    """One read-only call; UsageError naming `what` and AWS's error when it fails."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(**kwargs)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise UsageError(f"plan: {what}: {error.get('Code', 'error')}: {error.get('Message', exc)}") from None
    except BotoCoreError as exc:
        raise UsageError(f"plan: {what}: {exc}") from None


def caller_identity(deployment: Any, clients: Any) -> tuple[str, str]:
    """(account id, caller ARN) from sts:GetCallerIdentity (needs no permission)."""
    identity = _client_call("credentials (sts:GetCallerIdentity)",
                            clients.client("sts", deployment.regions[0].name).get_caller_identity)
    return str(identity["Account"]), str(identity.get("Arn", "?"))


def preconditions(deployment: Any, clients: Any, account: str, caller: str,
                  granted: set[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    """Read-only checks, each one line; UsageError naming the first that fails. A read the run
    itself never makes (an (action, ARN) not in `granted`) that is refused is left unchecked, not
    failed: a least-privilege runner may not make it. Returns the checks passed and those left."""
    done: dict[str, str] = {"credentials": f"account {account}, {caller}"}
    unchecked: list[str] = []

    def call(what: str, action: str, arn: str, fn: Any, **kwargs: Any) -> Any:
        try:
            return _client_call(what, fn, **kwargs)
        except UsageError as exc:
            if (action, arn) in granted or "AccessDenied" not in str(exc):
                raise
            unchecked.append(f"{what} ({action})")
            return None

    def arn(service: str, region: str, resource: str) -> str:
        return f"arn:aws:{service}:{region}:{account}:{resource}"

    for region in deployment.regions:
        lam = clients.client("lambda", region.name)
        read = []
        for name in (region.functions.health, region.functions.put, region.functions.get):
            config = call(f"function {name} ({region.name})", "lambda:GetFunctionConfiguration",
                          arn("lambda", region.name, f"function:{name}"), lam.get_function_configuration,
                          FunctionName=name)
            if config is None:
                continue
            read.append(name)
            if "Error" in (config.get("Environment") or {}):
                raise UsageError(f"plan: function {name} ({region.name}): its environment cannot be read "
                                 f"({config['Environment']['Error'].get('ErrorCode')}); a flip would wipe it")
        if read:
            done[f"functions {region.name}"] = ", ".join(read)
        got = call(f"health check {region.health_check_id} ({region.name})", "route53:GetHealthCheck",
                   f"arn:aws:route53:::healthcheck/{region.health_check_id}", clients.route53().get_health_check,
                   HealthCheckId=region.health_check_id)
        if got is not None:
            check = got["HealthCheck"]["HealthCheckConfig"]
            done[f"health check {region.name}"] = (f"{check.get('Type')} {check.get('ResourcePath', '/')}, every "
                                                   f"{check.get('RequestInterval', 30)} s, threshold "
                                                   f"{check.get('FailureThreshold', 3)}")
        described = call(f"table {deployment.table.name} ({region.name})", "dynamodb:DescribeTable",
                         arn("dynamodb", region.name, f"table/{deployment.table.name}"),
                         clients.client("dynamodb", region.name).describe_table, TableName=deployment.table.name)
        if described is not None:
            version = described["Table"].get("GlobalTableVersion") or "2017.11.29"
            if version != deployment.table.version:
                raise UsageError(f"plan: table {deployment.table.name} ({region.name}): version {version}, the "
                                 f"description says {deployment.table.version}")
            done[f"table {region.name}"] = f"{deployment.table.name}, version {version}"
    zone_arn = f"arn:aws:route53:::hostedzone/{deployment.hosted_zone_id}"

    def records_at(name: str) -> list[dict[str, Any]] | None:
        return call(f"records of {name.rstrip('.')}", "route53:ListResourceRecordSets", zone_arn,
                    zone_records.records_at, route53=clients.route53(), zone_id=deployment.hosted_zone_id,
                    name=name)

    records = records_at(deployment.domain)
    if records is not None:
        if deployment.routing == FAILOVER_PAIRS:
            done["records"] = _pair_records(deployment, records, records_at)
        else:
            checked = {r.get("HealthCheckId") for r in records}
            missing = [r.name for r in deployment.regions if r.health_check_id not in checked]
            if missing:
                raise UsageError(f"plan: records of {deployment.domain}: no record carries the health check of "
                                 f"{', '.join(missing)}")
            done["records"] = f"{deployment.domain}: one record per region, each with its health check"
    done["routing"] = routing_line(deployment)
    return done, unchecked


def routing_line(deployment: Any) -> str:
    """Where each region's clients go when it fails, as the description routes them."""
    if deployment.routing == FAILOVER_PAIRS:
        moves = ", ".join(f"{r.name} -> {r.failover_partner}" for r in deployment.regions)
        return f"{deployment.routing}: a failed region's clients go to its partner ({moves})"
    moved = [(r.name, deployment.expected_survivor(r.name)) for r in deployment.regions]
    named = ", ".join(f"{r} -> {s}" for r, s in moved if s)
    if named:
        return f"{deployment.routing}: {named}"
    return f"{deployment.routing}: a failed region's clients go to the nearest healthy region"


def _pair_records(deployment: Any, records: list[dict[str, Any]],
                  records_at: Any) -> str:
    """Failover between chosen pairs: each region's latency record aliases a pair whose PRIMARY
    carries the region's health check and whose SECONDARY carries its partner's. UsageError naming
    the region (and the pair) where it does not."""
    pairs: dict[str, zone_records.FailoverPair] = {}   # the PRIMARY's health check -> its pair
    for record in records:
        name = zone_records.in_zone_alias(record, deployment.hosted_zone_id)
        if name is None:
            continue
        listed = records_at(name)
        if listed is None:
            return f"{deployment.domain}: latency records found; their pairs not checked"
        pair = zone_records.split_pair(name, listed)
        if pair.primary is not None:
            pairs[str(pair.primary.get("HealthCheckId"))] = pair
    missing = [r.name for r in deployment.regions if r.health_check_id not in pairs]
    if missing:
        raise UsageError(f"plan: records of {deployment.domain}: no latency record aliases a failover pair whose "
                         f"PRIMARY carries the health check of {', '.join(missing)}")
    for region in deployment.regions:
        pair = pairs[region.health_check_id]
        partner = deployment.region(region.failover_partner)
        held = (pair.secondary or {}).get("HealthCheckId")
        if held != partner.health_check_id:
            raise UsageError(f"plan: records of {pair.name.rstrip('.')}: the SECONDARY of {region.name} carries "
                             f"health check {held}, not its partner {partner.name}'s ({partner.health_check_id})")
        for role, answer, owner in (("PRIMARY", pair.primary, region), ("SECONDARY", pair.secondary, partner)):
            target = zone_records.target_of(answer or {})
            if owner.regional_domain_name and target != zone_records.fqdn(owner.regional_domain_name):
                raise UsageError(f"plan: records of {pair.name.rstrip('.')}: the {role} of {region.name} answers "
                                 f"with {target.rstrip('.')}, not {owner.name}'s regional domain "
                                 f"{owner.regional_domain_name}")
    return (f"{deployment.domain}: one latency record per region, each aliasing its failover pair (the region's "
            f"health check, then its partner's)")


def permissions(clients: Any, region: str, caller: str, actions: list[tuple[str, str]]) -> tuple[str, str]:
    """The caller's permissions for every (action, resource) of the run, by iam:SimulatePrincipalPolicy
    for its user or role: ("ok", detail), or ("warning", why they were not checked). UsageError
    naming the first action and resource refused."""
    from botocore.exceptions import BotoCoreError, ClientError

    from gameday.safety import plan

    source, why = plan.simulation_source(caller)
    if source is None:
        return "warning", why
    try:
        refused = plan.simulate(clients.client("iam", region), source, actions)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        return "warning", (f"{plan.SIMULATE_ACTION} on {source}: {error.get('Code', 'error')}: "
                           f"{error.get('Message', exc)}")
    except BotoCoreError as exc:
        return "warning", f"{plan.SIMULATE_ACTION} on {source}: {exc}"
    denied = [r for r in refused if not r.missing_context]
    if denied:
        first = denied[0]
        more = f"; {len(denied) - 1} more refused" if len(denied) > 1 else ""
        whose = "" if source == caller else f" for {source}"
        raise UsageError(f"plan: permissions: {caller} may not call {first.action} on {first.resource} "
                         f"({first.decision}{whose}{more})")
    if refused:
        first = refused[0]
        return "warning", (f"{first.action} on {first.resource}: its policy's conditions need "
                           f"{', '.join(first.missing_context)}, which the simulator was not given")
    count = len({action for action, _ in actions} - plan.NO_PERMISSION_NEEDED)
    return "ok", f"{source} may call the {count} actions of the run on their resources ({plan.SIMULATE_ACTION})"


def build_plans(args: argparse.Namespace, deployment_path: Path,
                check_permissions: bool = False) -> tuple[str, list[Any], dict[str, Any]]:
    """The rendered plan, the plans and the policy the selection needs. With check_permissions
    (plan, run --dry-run; never policy, which is how one learns what to grant), the caller's
    permissions are checked first: a refusal is a UsageError, an unchecked one a warning on stderr."""
    import sys

    from gameday.aws import AwsClients
    from gameday.deployment import load_deployment
    from gameday.safety import plan

    deployment = load_deployment(deployment_path)
    clients = AwsClients(deployment)
    account, caller = caller_identity(deployment, clients)
    selected = selected_tests(args, deployment_path)
    scenarios = []
    all_actions: list[tuple[str, str]] = []
    for test, region in selected:
        faults = plan.scenario_faults(test)
        scenario = plan.ScenarioPlan(scenario=test, failed_region=region)
        scenario.actions = plan.actions_for(deployment, account, faults, region, plan.scenario_observation(test))
        all_actions += scenario.actions
        scenarios.append((scenario, faults))
    checked = None
    if check_permissions and all_actions:
        outcome, detail = permissions(clients, deployment.regions[0].name, caller, all_actions)
        if outcome == "ok":
            checked = detail
        else:
            print(f"gameday plan: warning: permissions not checked: {detail}", file=sys.stderr)
    done, unchecked = preconditions(deployment, clients, account, caller, set(all_actions))
    if checked is not None:
        done["permissions"] = checked
    if unchecked:
        print(f"gameday plan: warning: not checked (the run never makes these reads, and they were refused): "
              f"{'; '.join(unchecked)}", file=sys.stderr)
    check = plan.check_config(clients, deployment.regions[0].health_check_id)
    plans = []
    for scenario, faults in scenarios:
        scenario.faults = plan.describe_faults(clients, deployment, faults, scenario.failed_region)
        scenario.phases = plan.scenario_phases(scenario.scenario, check, deployment.record_ttl_s)
        plans.append(scenario)
    return (plan.render(plans, done), plans,
            plan.policy_document(all_actions, lease=plan.lease_arn(deployment, account)))


def cmd_plan(args: argparse.Namespace) -> int:
    with _deployment(args) as path:
        text, plans, _ = build_plans(args, path, check_permissions=True)
    print(text)
    print(f"\ngameday plan: {len(plans)} game day(s); nothing was changed")
    return 0


def cmd_policy(args: argparse.Namespace) -> int:
    import sys

    from gameday.safety.plan import SIMULATE_ACTION

    with _deployment(args) as path:
        _, _, document = build_plans(args, path)
    if getattr(args, "cfn", False):
        from gameday.safety.runner_template import runner_template

        document = runner_template(document)
    text = json.dumps(document, indent=2)
    if getattr(args, "out", None):
        Path(args.out).write_text(text + "\n")
        print(f"gameday policy: written to {args.out}")
    else:
        print(text)
    print(f"gameday policy: `gameday plan` also checks these permissions when the caller may call "
          f"{SIMULATE_ACTION} on its own user or role (optional; the run never calls it)", file=sys.stderr)
    return 0


@contextlib.contextmanager
def _deployment(args: argparse.Namespace) -> Iterator[Path]:
    """The description to plan against: --deployment, else the embedded local cloud the run would
    start (started for the plan, stopped after it)."""
    if args.deployment:
        yield Path(args.deployment)
        return
    from gameday.deployment import consistency_layout, embedded_layout
    from gameday.localcloud.process.launcher import LocalCloud

    regions, routing = embedded_layout(getattr(args, "regions", None), getattr(args, "routing", None))
    consistency, witness, version = consistency_layout(getattr(args, "consistency", None),
                                                       getattr(args, "witness", None), list(regions))
    with LocalCloud(time_scale=args.time_scale or 0.01, regions=list(regions), routing=routing,
                    consistency=consistency, witness=witness, table_version=version,
                    pairs=getattr(args, "pairs", None)) as cloud:
        yield Path(cloud.deployment_path)
