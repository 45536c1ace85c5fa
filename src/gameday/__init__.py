"""gameday: failover game days for multi-region active-active serverless backends.

The public API for teams writing their own game days (see docs/API.md): the procedures, the
faults, the probes, the session a game day gets, and the errors, all importable from here:

    from gameday import RegionFailover, FlipHealth, ScenarioFailed

The names resolve on first use. `import gameday` happens in every pytest run of an environment
with gameday installed (the plugin is a submodule) and in every `gameday` command, so it must
not import boto3, numpy or matplotlib for a name nobody asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

#: Public name -> "module" (the attribute has the same name) or "module:attribute".
#: The one table of the public API: move a name by changing its module here.
EXPORTS: dict[str, str] = {
    # the session every game day gets (the `gameday` fixture)
    "GamedaySession": "gameday.gamedays.session",
    # procedures
    "RegionFailover": "gameday.gamedays.failover",
    "FailoverUnderLoad": "gameday.gamedays.under_load",
    "LoadSettings": "gameday.gamedays.under_load",
    "effective_slos": "gameday.gamedays.under_load",
    "StrongConsistencyRpo": "gameday.gamedays.strong_consistency",
    "table_consistency": "gameday.gamedays.strong_consistency",
    "reported_scenario": "gameday.gamedays.scenario_report",
    "wait_all_healthy": "gameday.gamedays.steps",
    "wait_for": "gameday.gamedays.steps",
    "categorised_failures": "gameday.gamedays.steps",
    "write_item": "gameday.gamedays.steps",
    # faults: each records what it changes, restores it on every exit path, and journals it
    "FlipHealth": "gameday.faults.flip_health",
    "ThrottleFunction": "gameday.faults.concurrency",
    "RegionOutage": "gameday.faults.region_outage",
    "WriteImpairment": "gameday.faults.write_impairment",
    "PauseReplication": "gameday.faults.replication",
    "DropReplication": "gameday.faults.replication",
    "JournalledFault": "gameday.faults.base",
    "restore_pending": "gameday.faults.journal",
    # probes: Route 53 health, DNS answers, table items, traffic through the global domain
    "Route53HealthProbe": "gameday.observe.route53",
    "Resolver": "gameday.observe.resolver",
    "TestDNSAnswer": "gameday.observe.dns_answers",
    "resolver_fetcher": "gameday.observe.dns_answers",
    "wait_until_excludes": "gameday.observe.dns_answers",
    "wait_until_includes": "gameday.observe.dns_answers",
    "read_item": "gameday.observe.tables",
    "read_item_everywhere": "gameday.observe.tables",
    "wait_until_item_in_region": "gameday.observe.tables",
    "GroundTruth": "gameday.observe.ground_truth",
    "GlobalClient": "gameday.load.global_client",
    "Traffic": "gameday.load.traffic",
    # records and measurement
    "RunRecord": "gameday.records",
    "Phase": "gameday.records",
    "Event": "gameday.records",
    "check_slos": "gameday.measure.metrics",
    # errors
    "GamedayError": "gameday.errors",
    "UsageError": "gameday.errors",
    "Category": "gameday.errors",
    "ScenarioError": "gameday.errors",
    "ScenarioFailed": "gameday.errors",
    "FaultNotEffective": "gameday.errors",
    "RollbackFailed": "gameday.errors",
    "DetectionTimeout": "gameday.observe.route53",
    "DnsShiftTimeout": "gameday.observe.dns_answers",
    "ItemNotReplicated": "gameday.observe.tables",
}

__all__ = list(EXPORTS)


def __getattr__(name: str) -> Any:
    target = EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'gameday' has no attribute {name!r}")
    module_name, _, attribute = target.partition(":")
    value = getattr(importlib.import_module(module_name), attribute or name)
    globals()[name] = value  # resolved once; later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(EXPORTS))
