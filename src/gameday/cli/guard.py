"""What `gameday run` does before and around the game days on a shared deployment: refuse targets
and moments outside the description's guardrails, and hold the deployment's lease for the whole
run, so no two game days fault one deployment at once, on any machine.

Both happen before pytest starts, so a refusal changes nothing in any region.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gameday.deployment import Deployment
    from gameday.safety.lease import LeaseLost


def lease_key(deployment: Deployment) -> str:
    """What names one deployment across machines: its hosted zone and domain."""
    return f"{deployment.hosted_zone_id}/{deployment.domain}"


def fault_targets(deployment: Deployment, failed_regions: Sequence[str]) -> list[tuple[str, str, str | None]]:
    """(region, function, ARN) of every function the catalog may fault in the regions it fails:
    Health (the flip), PutItem (the blind spot's throttle). ARNs are checked too when they are known."""
    targets: list[tuple[str, str, str | None]] = []
    for region in deployment.regions:
        if region.name in failed_regions:
            targets += [(region.name, region.functions.health, None), (region.name, region.functions.put, None)]
    return targets


def check_guardrails(deployment: Deployment, failed_regions: Sequence[str]) -> None:
    """GuardrailRefused (exit 3) for a target or a moment outside the guardrails; the account is read
    with sts:GetCallerIdentity (read only) when the guardrails name one."""
    rails = deployment.guardrails
    rails.check_targets(fault_targets(deployment, failed_regions))
    if rails.account_id is not None:
        from gameday.aws import AwsClients

        clients = AwsClients(deployment)
        identity = clients.client("sts", deployment.regions[0].name).get_caller_identity()
        rails.check_account(str(identity["Account"]))


@contextlib.contextmanager
def held_lease(deployment: Deployment, *, run_id: str, wait_s: float) -> Iterator[None]:
    """The deployment's lease for the block (nothing when the description names no lease table).
    LeaseHeld (exit 3) names the holder. If the lease is taken away mid-run, the run is sent
    SIGTERM, which restores every fault in place and ends the run."""
    if deployment.lease is None:
        yield
        return
    from gameday.aws import AwsClients
    from gameday.safety.lease import Lease

    def lost(error: LeaseLost) -> None:
        print(f"gameday: {error}; stopping the run (faults are restored)", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)

    dynamodb = AwsClients(deployment).client("dynamodb", deployment.lease.region)
    with Lease(dynamodb, lease_key(deployment), run_id=run_id, table=deployment.lease.table,
               wait_s=wait_s, on_lost=lost) as lease:
        holder = lease.holder
        if holder is not None:
            print(f"gameday run {run_id}: holds the lease on {holder.deployment} until renewed "
                  f"(table {deployment.lease.table}, {deployment.lease.region})", flush=True)
        yield


def unlock(deployment: Deployment, *, force: bool) -> str:
    """Delete the deployment's lease whoever holds it (only with force); a line saying who held it."""
    from gameday.errors import UsageError

    if deployment.lease is None:
        raise UsageError(f"{deployment.source}: lease: the description names no lease table")
    if not force:
        raise UsageError("--force: required (unlock deletes another run's lease; make sure that run is gone)")
    from gameday.aws import AwsClients
    from gameday.safety.lease import force_unlock

    dynamodb = AwsClients(deployment).client("dynamodb", deployment.lease.region)
    holder = force_unlock(dynamodb, lease_key(deployment), table=deployment.lease.table)
    if holder is None:
        return f"no lease was held on {lease_key(deployment)}"
    return (f"removed the lease of run {holder.run_id} ({holder.user}@{holder.host}, pid {holder.pid}) "
            f"on {holder.deployment}")
