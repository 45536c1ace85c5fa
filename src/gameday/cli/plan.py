"""`gameday plan` (also `gameday run --dry-run`): resolve the deployment, check every precondition
with read-only calls, and print for each selected game day the faults it would inject, its phases'
budgets and the AWS actions it would call. It changes nothing.

A failing precondition is one line naming it, exit 2.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gameday.errors import UsageError


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


def preconditions(deployment: Any, clients: Any) -> tuple[dict[str, str], str]:
    """Read-only checks, each one line; UsageError naming the first that fails. Returns the checks
    passed and the account id."""
    from botocore.exceptions import BotoCoreError, ClientError

    done: dict[str, str] = {}

    def call(what: str, fn: Any, **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise UsageError(f"plan: {what}: {error.get('Code', 'error')}: {error.get('Message', exc)}") from None
        except BotoCoreError as exc:
            raise UsageError(f"plan: {what}: {exc}") from None

    first = deployment.regions[0].name
    identity = call("credentials (sts:GetCallerIdentity)", clients.client("sts", first).get_caller_identity)
    account = str(identity["Account"])
    done["credentials"] = f"account {account}, {identity.get('Arn', '?')}"
    for region in deployment.regions:
        lam = clients.client("lambda", region.name)
        for name in (region.functions.health, region.functions.put, region.functions.get):
            config = call(f"function {name} ({region.name})", lam.get_function_configuration, FunctionName=name)
            if "Error" in (config.get("Environment") or {}):
                raise UsageError(f"plan: function {name} ({region.name}): its environment cannot be read "
                                 f"({config['Environment']['Error'].get('ErrorCode')}); a flip would wipe it")
        done[f"functions {region.name}"] = ", ".join((region.functions.health, region.functions.put,
                                                      region.functions.get))
        check = call(f"health check {region.health_check_id} ({region.name})", clients.route53().get_health_check,
                     HealthCheckId=region.health_check_id)["HealthCheck"]["HealthCheckConfig"]
        done[f"health check {region.name}"] = (f"{check.get('Type')} {check.get('ResourcePath', '/')}, every "
                                               f"{check.get('RequestInterval', 30)} s, threshold "
                                               f"{check.get('FailureThreshold', 3)}")
        table = call(f"table {deployment.table.name} ({region.name})", clients.client("dynamodb", region.name)
                     .describe_table, TableName=deployment.table.name)["Table"]
        version = table.get("GlobalTableVersion") or "2017.11.29"
        if version != deployment.table.version:
            raise UsageError(f"plan: table {deployment.table.name} ({region.name}): version {version}, the "
                             f"description says {deployment.table.version}")
        done[f"table {region.name}"] = f"{deployment.table.name}, version {version}"
    records = call(f"records of {deployment.domain}", clients.route53().list_resource_record_sets,
                   HostedZoneId=deployment.hosted_zone_id, StartRecordName=deployment.domain)
    checked = {r.get("HealthCheckId") for r in records.get("ResourceRecordSets", [])
               if r.get("Name", "").rstrip(".").lower() == deployment.domain.rstrip(".").lower()}
    missing = [r.name for r in deployment.regions if r.health_check_id not in checked]
    if missing:
        raise UsageError(f"plan: records of {deployment.domain}: no record carries the health check of "
                         f"{', '.join(missing)}")
    done["records"] = f"{deployment.domain}: one record per region, each with its health check"
    return done, account


def build_plans(args: argparse.Namespace, deployment_path: Path) -> tuple[str, list[Any], dict[str, Any]]:
    from gameday.aws import AwsClients
    from gameday.deployment import load_deployment
    from gameday.safety import plan

    deployment = load_deployment(deployment_path)
    clients = AwsClients(deployment)
    done, account = preconditions(deployment, clients)
    check = plan.check_config(clients, deployment.regions[0].health_check_id)
    plans = []
    all_actions: list[tuple[str, str]] = []
    for test, region in selected_tests(args, deployment_path):
        faults = plan.scenario_faults(test)
        scenario = plan.ScenarioPlan(scenario=test, failed_region=region)
        scenario.faults = plan.describe_faults(clients, deployment, faults, region)
        scenario.phases = plan.plan_phases(check, deployment.record_ttl_s)
        scenario.actions = plan.actions_for(deployment, account, faults, region)
        all_actions += scenario.actions
        plans.append(scenario)
    return plan.render(plans, done), plans, plan.policy_document(all_actions)


def cmd_plan(args: argparse.Namespace) -> int:
    with _deployment(args) as path:
        text, plans, _ = build_plans(args, path)
    print(text)
    print(f"\ngameday plan: {len(plans)} game day(s); nothing was changed")
    return 0


def cmd_policy(args: argparse.Namespace) -> int:
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
    return 0


@contextlib.contextmanager
def _deployment(args: argparse.Namespace) -> Iterator[Path]:
    """The description to plan against: --deployment, else the embedded local cloud the run would
    start (started for the plan, stopped after it)."""
    if args.deployment:
        yield Path(args.deployment)
        return
    from gameday.localcloud.process.launcher import LocalCloud

    with LocalCloud(time_scale=args.time_scale or 0.01) as cloud:
        yield Path(cloud.deployment_path)
