"""Where an acknowledged write landed, proved from evidence the writing handler cannot fake.

Why: the handler's `written_region` stamp is only the handler's claim. A PutItem that writes to
another region's table (a stale environment, a hard-coded client region, a cross-region
integration) but stamps its own `AWS_REGION` would pass every failover if the stamp were
believed. So each landing rests on a named proof:

- `aws:rep:updateregion` (2017.11.29 tables): written by DynamoDB itself, not the handler. It is a
  second write in the source region (two stream records per write), so it is polled until it
  appears, within the replication budget, instead of read once.
- `first_seen` (2019.11.21 tables): every region's replica is read at once, right after the
  acknowledgement, and again until the item is everywhere. The region that holds the item while
  the others do not yet is where it was written: replication is asynchronous ("typically within a
  second"), and the harness reads within a round trip of the acknowledgement. When the first
  round already finds the item everywhere, the order is not observed and the row says so
  (`handler_claim`, `corroborated: false`) rather than claim a proof it does not have.

What AWS offers beyond that, and why it is not used (researched in the AWS API reference): a
stream record's `awsRegion` is "the region in which the GetRecords request was received", not
the writer's; `userIdentity` is documented only for Time To Live deletes; `ReplicationLatency`
is a per-minute aggregate per receiving region, not per item. None of them names the region
that wrote one item on a current table.

The table's real version is checked against DescribeTable (`GlobalTableVersion`, absent on
legacy replicas) before any landing is judged: a description that says 2017.11.29 for a current
table would wait for a stamp that never comes, and the opposite would believe the handler.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from gameday import timing
from gameday.deployment import Deployment
from gameday.errors import Category, ScenarioError
from gameday.observe import tables

LEGACY, CURRENT = "2017.11.29", "2019.11.21"
STAMP = "aws:rep:updateregion"
PROOF_STAMP = STAMP
PROOF_FIRST_SEEN = "first_seen"
PROOF_CLAIM = "handler_claim"
ROUND_CAP_S = 0.1  # rounds of reads at most this far apart: well inside "typically within a second"


class WrongRegion(ScenarioError):
    """The evidence says the write landed elsewhere than the region that served it."""

    category = Category.WRONG_REGION

    def __init__(self, message: str, *, landing: Landing | None = None) -> None:
        super().__init__(message)
        self.landing = landing


class TableVersionMismatch(ScenarioError):
    """DescribeTable says the table is of another global-table version than the description."""

    category = Category.STEADY_STATE


class LandingNotProved(ScenarioError):
    """The item never showed up where it was acknowledged, or its stamp never came."""

    category = Category.LOST_WRITES


@dataclass
class Landing:
    """Where the write landed and what that rests on (`evidence()` goes into the run record)."""

    expected: str
    region: str | None                  # where the proof says it landed (None: not established)
    proof: str                          # PROOF_STAMP | PROOF_FIRST_SEEN | PROOF_CLAIM
    corroborated: bool                  # True when the proof is not the handler's own word
    claimed: str | None                 # the handler's stamp (the deployment's region attribute)
    first_seen: list[str] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    stamp_wait: dict[str, Any] | None = None
    item: dict[str, Any] | None = None
    table_versions: dict[str, str] = field(default_factory=dict)

    def evidence(self) -> dict[str, Any]:
        return {"proof": self.proof, "corroborated": self.corroborated, "region": self.region,
                "expected": self.expected, "claimed": self.claimed, "first_seen": self.first_seen,
                "rounds": self.rounds[:20], "stamp_wait": self.stamp_wait,
                "table_versions": self.table_versions}


# -- the table's version ----------------------------------------------------------

def table_version(clients: Any, deployment: Deployment, region: str) -> str:
    """The version DescribeTable shows for `region`'s replica (legacy replicas show none)."""
    table = clients.dynamodb(region).describe_table(TableName=deployment.table.name)["Table"]
    return str(table.get("GlobalTableVersion") or LEGACY)


def check_table_version(clients: Any, deployment: Deployment) -> dict[str, str]:
    """{region: version} from DescribeTable; TableVersionMismatch when any differs from the description."""
    seen = {r.name: table_version(clients, deployment, r.name) for r in deployment.regions}
    wrong = {region: v for region, v in seen.items() if v != deployment.table.version}
    if wrong:
        where = ", ".join(f"{region}: {v}" for region, v in wrong.items())
        raise TableVersionMismatch(
            f"table {deployment.table.name}: the description says version {deployment.table.version}, "
            f"DescribeTable says {where} (GlobalTableVersion is absent on 2017.11.29 replicas); fix table.version")
    return seen


# -- the landing ------------------------------------------------------------------

def _read_round(clients: Any, deployment: Deployment, key: dict[str, Any],
                pool: ThreadPoolExecutor) -> dict[str, tables.ItemView]:
    """Every region's replica read at the same moment (one thread per region)."""
    futures = {r.name: pool.submit(tables.read_item, clients, deployment, r.name, key) for r in deployment.regions}
    return {region: future.result() for region, future in futures.items()}


def _first_seen(clients: Any, deployment: Deployment, key: dict[str, Any], acked_at: float,
                budget_s: float, poll_s: float) -> tuple[list[str], list[dict[str, Any]], dict[str, tables.ItemView]]:
    """(regions holding the item in the first round that found it anywhere, every round, the last views)."""
    rounds: list[dict[str, Any]] = []
    last: dict[str, dict[str, tables.ItemView]] = {}
    with ThreadPoolExecutor(max_workers=len(deployment.regions), thread_name_prefix="landing") as pool:
        def attempt() -> dict[str, tables.ItemView]:
            started = time.time()
            views = _read_round(clients, deployment, key, pool)
            rounds.append({"t": started, "since_ack_s": round(started - acked_at, 6),
                           "present": sorted(r for r, v in views.items() if v.present)})
            last["views"] = views
            return views

        timing.measured_poll(attempt, until=lambda views: all(v.present for v in views.values()),
                             poll_s=min(poll_s, ROUND_CAP_S), budget_s=budget_s)
    first: list[str] = next((r["present"] for r in rounds if r["present"]), [])
    return first, rounds, last.get("views", {})


def prove_landing(clients: Any, deployment: Deployment, key: dict[str, Any], expected_region: str,
                  acked_at: float, *, poll_s: float, budget_s: float | None = None,
                  check_version: bool = True) -> Landing:
    """Where the acknowledged write of `key` landed; WrongRegion if not in `expected_region`,
    LandingNotProved if the item (or its legacy stamp) never shows up there; TableVersionMismatch
    (checked after the first reads, which must follow the acknowledgement at once) when
    DescribeTable contradicts the description."""
    budget = budget_s if budget_s is not None else tables.replication_budget(deployment)
    attribute = deployment.table.region_attribute
    first, rounds, views = _first_seen(clients, deployment, key, acked_at, budget, poll_s)
    versions = check_table_version(clients, deployment) if check_version else {}
    view = views.get(expected_region)
    if view is None or not view.present:
        where = ", ".join(f"{r}: {'present' if v.present else 'absent'}" for r, v in views.items())
        raise LandingNotProved(f"acknowledged item {key} is not in {expected_region}'s table within "
                               f"{budget:.2f} s ({where})")
    landing = Landing(expected=expected_region, region=None, proof=PROOF_CLAIM, corroborated=False,
                      claimed=view.written_region, first_seen=first, rounds=rounds, item=view.item,
                      table_versions=versions)
    if deployment.table.version == LEGACY:
        _prove_by_stamp(clients, deployment, key, landing, budget, poll_s)
    elif len(first) == 1:
        landing.region, landing.proof, landing.corroborated = first[0], PROOF_FIRST_SEEN, True
    else:  # the first round found it everywhere: the order of arrival was not observed
        landing.region = landing.claimed
    if landing.region != expected_region:
        by = {PROOF_STAMP: f"{STAMP}={landing.region!r}",
              PROOF_FIRST_SEEN: f"it appeared first in {landing.region} (every region read at once right after "
                                f"the acknowledgement: {first})",
              PROOF_CLAIM: f"{attribute}={landing.claimed!r}"}[landing.proof]
        raise WrongRegion(f"item {key['id'] if 'id' in key else key}: {by}, expected the region that served the "
                          f"write, {expected_region!r}", landing=landing)
    if deployment.table.version != LEGACY and landing.claimed != expected_region:
        raise WrongRegion(f"item {key}: {attribute}={landing.claimed!r} (the handler's stamp), but it landed in "
                          f"{expected_region!r} ({landing.proof}): the handler misnames its region", landing=landing)
    return landing


def _prove_by_stamp(clients: Any, deployment: Deployment, key: dict[str, Any], landing: Landing,
                    budget_s: float, poll_s: float) -> None:
    """Poll the expected region's item until DynamoDB's own stamp appears (a second write)."""
    wait = timing.measured_poll(lambda: tables.read_item(clients, deployment, landing.expected, key),
                                until=lambda v: v.item is not None and v.item.get(STAMP) is not None,
                                poll_s=min(poll_s, 0.05), budget_s=budget_s)
    landing.stamp_wait = wait.figures()
    if not wait.reached or wait.value is None or wait.value.item is None:
        raise LandingNotProved(f"item {key}: {STAMP} did not appear in {landing.expected} within {budget_s:.2f} s "
                               f"(a 2017.11.29 table stamps every write); is the table really 2017.11.29?")
    landing.item = wait.value.item
    landing.claimed = str(wait.value.item.get(deployment.table.region_attribute))
    landing.region = str(wait.value.item[STAMP])
    landing.proof, landing.corroborated = PROOF_STAMP, True
