"""Faults: each a context manager on one protocol (faults/base.py) that journals, injects,
verifies, yields and restores exactly. One module per fault; the journal and its repair in
journal.py; signal handling in signals.py."""

from __future__ import annotations

from gameday.errors import FaultNotEffective, RollbackFailed
from gameday.faults.base import JournalledFault
from gameday.faults.flip_health import FlipHealth, flip_health
from gameday.faults.signals import SigtermRaises, Terminated, signals_deferred
from gameday.records import Phase, RunRecord

__all__ = [
    "FaultNotEffective", "RollbackFailed", "Terminated", "Phase", "RunRecord", "SigtermRaises",
    "signals_deferred", "JournalledFault", "FlipHealth", "flip_health",
]
