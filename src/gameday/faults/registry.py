"""Which function undoes a journal entry of each fault, for `gameday restore`.

Why a module of its own: the repair reads entries written by any fault, so it must know every
fault module; the fault modules only know the journal file. Keeping the registry here, above
both, leaves the imports one way (no fault imports the repair).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gameday.errors import GamedayError
from gameday.faults import concurrency, region_outage, replication, write_impairment
from gameday.faults.flip_health import FlipHealth

Restorer = Callable[[dict[str, Any], Any], str]

#: fault name (as journalled) -> (entry, clients) -> one-line detail of what was put back
RESTORERS: dict[str, Restorer] = {
    FlipHealth.fault_name: FlipHealth.restore_entry,
    replication.PauseReplication.fault_name: replication.restore_entry,
    replication.DropReplication.fault_name: replication.restore_entry,
    concurrency.FAULT_NAME: concurrency.restore_entry,
    write_impairment.FAULT_NAME: write_impairment.restore_entry,
    region_outage.FAULT_NAME: region_outage.restore_entry,
}


def restorer_for(fault: str) -> Restorer:
    """The function that undoes a journal entry of `fault`: (entry, clients) -> detail."""
    try:
        return RESTORERS[fault]
    except KeyError:
        raise GamedayError(f"journal entry of unknown fault {fault!r}; known: {', '.join(RESTORERS)}") from None
