"""Signals while a fault is active: SIGTERM becomes an exception that undoes the fault, and a
restore is never cut short by a second Ctrl-C or SIGTERM.

Why: a game day killed by CI (SIGTERM) or by a person (Ctrl-C) must take the same path as a
failed one (restore, then stop); and a restore interrupted halfway leaves a function changed
in a way the journal does not describe. Python delivers signals to the main thread only, so
elsewhere both helpers do nothing.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

Handler = Any  # what signal.getsignal returns: a callable, SIG_DFL/SIG_IGN, or None


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived while a fault was active (a KeyboardInterrupt, so the same paths undo it)."""


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class SigtermRaises:
    """While installed, SIGTERM raises Terminated in the main thread; uninstall puts the
    previous handler back."""

    def __init__(self) -> None:
        self._previous: Handler = None
        self._installed = False

    def install(self) -> None:
        if not _in_main_thread() or self._installed:
            return

        def raise_terminated(signum: int, frame: Any) -> None:
            raise Terminated(f"signal {signum} (SIGTERM) while a fault was active")

        self._previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, raise_terminated)
        self._installed = True

    def uninstall(self) -> None:
        if not self._installed:
            return
        signal.signal(signal.SIGTERM, self._previous if self._previous is not None else signal.SIG_DFL)
        self._installed = False

    def release(self) -> dict[signal.Signals, Handler]:
        """Mark uninstalled without touching the handler; returns {SIGTERM: previous handler}
        for `signals_deferred(after=...)` to put back once the restore is done."""
        if not self._installed:
            return {}
        self._installed = False
        return {signal.SIGTERM: self._previous}


@contextmanager
def signals_deferred(after: dict[signal.Signals, Handler] | None = None) -> Iterator[list[int]]:
    """Hold SIGINT and SIGTERM back while a restore runs; yields the signals that arrived.

    On exit the handlers found on entry are put back, except those `after` names (signal ->
    handler to install).
    """
    received: list[int] = []
    if not _in_main_thread():
        yield received
        return
    previous: dict[signal.Signals, Handler] = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous.update(after or {})
    for sig in previous:
        signal.signal(sig, lambda signum, frame: received.append(signum))
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
