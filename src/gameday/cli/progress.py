"""The progress display of `gameday run`, owned by the process that runs pytest (the xdist
controller under -n): it reads the workers' progress events from the run folder and shows them.

On a terminal: a live view (one line per running scenario). Otherwise (a file, a CI log): one plain
line per phase change, grouped per scenario under GitHub Actions. The display writes to a copy of
the terminal's descriptor taken before pytest starts, so pytest's output capture (which swaps the
descriptor during each test) never swallows it, and pytest's own per-test letters are left out:
the finished rows say the same.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pytest

from gameday.report.progress_events import EventTail, progress_dir

if TYPE_CHECKING:
    from gameday.report.progress_view import Board, ScenarioState, View

POLL_S = 0.1
NORMAL = 0   # the display's level (report.progress_view: QUIET -1, NORMAL 0, VERBOSE 1)


def github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


class RunProgress:
    """A pytest plugin object (given to pytest.main) that shows the run's progress events."""

    def __init__(self, run_dir: Path, level: int = NORMAL, stream: IO[str] | None = None) -> None:
        self._tail = EventTail(progress_dir(run_dir))
        self._level = level
        self._stream = stream if stream is not None else os.fdopen(os.dup(sys.stdout.fileno()), "w",
                                                                   encoding="utf-8", errors="replace")
        self._own_stream = stream is None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._view: View | None = None
        self.board: Board | None = None

    @property
    def live(self) -> bool:
        return self._stream.isatty() and os.environ.get("TERM") != "dumb"

    def _write(self, line: str) -> None:
        self._stream.write(line + "\n")
        self._stream.flush()

    def _board(self) -> Board:
        """Made with the first event: a run in which no scenario starts never makes a view."""
        if self.board is None:
            from gameday.report.progress_view import Board, LiveView, PlainView

            view: View = (LiveView(self._running, self._stream, self._level) if self.live
                          else PlainView(self._write, self._level, github=github_actions()))
            self._view = view
            self.board = Board(view)
        return self.board

    def _running(self) -> list[ScenarioState]:
        """For the live view's own thread, without the display's lock: that thread holds rich's
        lock while it draws, and a finished row is printed (rich's lock) under the display's."""
        board = self.board
        return board.running() if board is not None else []

    def drain(self) -> None:
        with self._lock:
            for item in self._tail.read():
                self._board().apply(item)

    def _follow(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self.drain()
            except Exception as exc:  # noqa: BLE001 - the display must never end the run
                self._write(f"gameday: progress display stopped: {type(exc).__name__}: {exc}")
                return

    # -- pytest hooks -------------------------------------------------------------------------
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self._thread = threading.Thread(target=self._follow, name="gameday-progress", daemon=True)
        self._thread.start()

    @pytest.hookimpl(wrapper=True)
    def pytest_report_teststatus(self, report: pytest.TestReport, config: pytest.Config) -> Any:
        """No per-test letter between the display's lines (the word stays for pytest's summary)."""
        category, _letter, word = yield
        return category, "", word

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown" or report.failed or report.skipped:
            self.drain()   # the worker wrote the test's last events before it reported the test
            with self._lock:
                if self.board is not None:
                    self.board.finish(report.nodeid, report.outcome)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        self.drain()
        with self._lock:
            if self.board is not None:
                self.board.finish_all()
            if self._view is not None:
                self._view.close()
                self._view = None

    def print_summary(self, table: str, verdicts: list[str]) -> None:
        """The summary table, coloured by verdict on a terminal."""
        if self.live:
            from rich.console import Console

            from gameday.report.progress_view import coloured_summary

            console = Console(file=self._stream, highlight=False, force_terminal=True)
            console.print(coloured_summary(table, verdicts), end="", soft_wrap=True)   # the terminal wraps, as before
        else:
            self._write(table)

    def release(self) -> None:
        if self._own_stream:
            self._stream.close()
