"""The journal of injected faults, and the repair of what a killed run left behind.

The file itself (its fixed entry shape, the locking, the fingerprints) is in journal_file;
this module adds `restore_pending`, which undoes every unrestored entry through the fault
registry. The split keeps the import graph one way: a fault writes the journal file, the
registry knows the faults, and the repair knows the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gameday.deployment import Deployment
from gameday.errors import GamedayError
from gameday.faults.journal_file import (
    ANY_ENDPOINT,
    DEFAULT_JOURNAL_PATH,
    INJECTED,
    JOURNAL_ENV_VAR,
    RESTORE_FAILED,
    RESTORED,
    UNRESTORED_STATES,
    FaultAlreadyInjected,
    Journal,
    account_of_arn,
    default_journal_path,
    env_fingerprint,
    fingerprint_matches,
    same_target,
)
from gameday.faults.registry import restorer_for

if TYPE_CHECKING:
    from gameday.aws import AwsClients

@dataclass
class RestoreOutcome:
    """What `restore_pending` did with one entry; str() is the line `gameday restore` prints."""

    entry_id: str
    fault: str
    region: str
    function: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        verdict = "restored" if self.ok else "RESTORE FAILED"
        return f"{verdict}: {self.fault} on {self.function} in {self.region} ({self.detail}) [entry {self.entry_id}]"


def _refuse_other_accounts(target: dict[str, Any], clients: AwsClients) -> None:
    """A function journalled under another account is never acted on, whatever its name."""
    account = target.get("account") or (account_of_arn(target["function_arn"]) if target.get("function_arn") else None)
    if account is None:
        return
    caller = clients.account_id()
    if account != caller:
        raise GamedayError(f"{target.get('function_arn')} belongs to account {account}, these credentials are "
                           f"account {caller}: refused (restore it with the account the fault was made in)")


def restore_pending(journal_path: str | Path | Journal, clients: AwsClients | Deployment) -> list[RestoreOutcome]:
    """Undo every unrestored fault in the journal made against this deployment's endpoint.

    `clients` is a gameday.aws.AwsClients (a Deployment is accepted too). Entries made
    against another endpoint (another local cloud, another account's endpoint) are left
    alone. Each restore is exact and idempotent (read-merge-write of the changed keys).
    """
    from gameday.aws import AwsClients

    if isinstance(clients, Deployment):
        clients = AwsClients(clients)
    journal = journal_path if isinstance(journal_path, Journal) else Journal(journal_path)
    outcomes: list[RestoreOutcome] = []
    for entry in journal.pending(endpoint=clients.endpoint_url):
        target = entry.get("target", {})
        base = dict(entry_id=entry["id"], fault=entry.get("fault", "?"),
                    region=target.get("region", "?"), function=target.get("function", "?"))
        try:
            _refuse_other_accounts(target, clients)
            restore = restorer_for(entry.get("fault", ""))
            detail = restore(entry, clients)
        except Exception as exc:  # reported, kept in the journal for the next attempt
            message = f"{type(exc).__name__}: {exc}".replace("\n", " ")
            journal.mark_restore_failed(entry, message)
            outcomes.append(RestoreOutcome(ok=False, detail=message, **base))
            continue
        drift = "drift" in detail
        journal.mark_restored(entry, drift=drift)
        _remove_mark(clients, entry)
        outcomes.append(RestoreOutcome(ok=True, detail=detail, **base))
    return outcomes


__all__ = [
    "ANY_ENDPOINT", "DEFAULT_JOURNAL_PATH", "INJECTED", "JOURNAL_ENV_VAR", "RESTORED", "RESTORE_FAILED",
    "UNRESTORED_STATES", "FaultAlreadyInjected", "Journal", "RestoreOutcome", "default_journal_path",
    "env_fingerprint", "fingerprint_matches", "restore_pending", "same_target",
]


def _remove_mark(clients: Any, entry: dict[str, Any]) -> None:
    """The mark a killed run left on the function (faults/marks.py) goes with the restore of its value."""
    from botocore.exceptions import ClientError

    from gameday.faults import marks

    target = entry.get("target", {})
    if entry.get("fault", "").startswith("replication"):
        return   # replication faults change no function, so they mark none
    functions = [target.get("function_arn") or target.get("function"), *target.get("marked", [])]
    lam = clients.lambda_(target.get("region"))
    for function in dict.fromkeys(f for f in functions if f):
        try:
            arn = function if str(function).startswith("arn:") else marks.function_arn(lam, function)
            marks.unmark(lam, arn)
        except ClientError:
            pass   # the value is restored; a mark that cannot be removed is visible on the function
