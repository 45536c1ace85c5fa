"""Showing progress events: the state of each scenario, and the views of it.

`Board` keeps one state per scenario (its phase, what it waits for, the budget of that wait) and
hands each change to a view. `PlainView` writes one line per phase change (for logs: a file, CI),
`LiveView` one line per running scenario with a bar, redrawn in place (rich, imported only when a
live view is made: a run that shows nothing never pays for it).

Levels: QUIET shows finished scenarios only, NORMAL adds phases (and, live, the waits), VERBOSE
adds a plain line for every wait and note.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from gameday.report.progress_events import Event

QUIET, NORMAL, VERBOSE = -1, 0, 1
VERDICT_STYLES = {"pass": "bold green", "fail": "bold red", "broken": "bold yellow", "skipped": "yellow"}


@dataclass
class ScenarioState:
    node: str
    label: str
    started: float
    phase: str = "starting"
    phase_shown: bool = True      # nothing to show before the first phase
    what: str = ""
    budget: float | None = None
    elapsed: float = 0.0
    seen_at: float = 0.0          # when `elapsed` was measured
    verdict: str | None = None
    category: str | None = None
    ended: float | None = None

    def wait_elapsed(self, now: float) -> float:
        return self.elapsed + max(0.0, now - self.seen_at)

    def verdict_text(self) -> str:
        verdict = self.verdict or "-"
        return f"{verdict} ({self.category})" if verdict == "fail" and self.category else verdict


class View(Protocol):
    def phase(self, state: ScenarioState) -> None: ...
    def wait(self, state: ScenarioState, event: Event) -> None: ...
    def finished(self, state: ScenarioState) -> None: ...
    def close(self) -> None: ...


def verdict_of_outcome(outcome: str) -> str:
    """A pytest outcome as a verdict, for a scenario that ended without writing its row."""
    return {"passed": "pass", "failed": "fail"}.get(outcome, outcome)


def phase_line(state: ScenarioState) -> str:
    if state.budget is None:
        return f"{state.label} | {state.phase} | no wait"
    return f"{state.label} | {state.phase} | budget {state.budget:.2f} s: {state.what}"


def wait_line(state: ScenarioState, event: Event) -> str:
    what = event.get("what") or event.get("text")
    timing = f" ({event['elapsed']:.2f} s of {event['budget']:.2f} s)" if event.get("kind") == "wait" else ""
    return f"{state.label} | {state.phase} | {what}{timing}"


def finished_line(state: ScenarioState) -> str:
    took = (state.ended or time.time()) - state.started
    return f"{state.label} | {state.verdict_text()} in {took:.1f} s"


@dataclass
class Board:
    """Every scenario the run has heard of, by test node id."""

    view: View
    scenarios: dict[str, ScenarioState] = field(default_factory=dict)

    def apply(self, item: Event) -> None:
        node = str(item.get("node") or item.get("label") or "?")
        state = self.scenarios.get(node)
        t = float(item.get("t") or time.time())
        if state is None:
            state = self.scenarios[node] = ScenarioState(node, str(item.get("label") or node), started=t)
        elif item.get("label"):
            state.label = str(item["label"])   # the record's name replaces the test's once it is known
        if state.ended is not None:
            return
        kind = item.get("kind")
        if kind == "phase":
            self._flush_phase(state)
            state.phase, state.phase_shown = str(item.get("name")), False
            state.what, state.budget, state.elapsed, state.seen_at = "", None, 0.0, t
        elif kind == "wait":
            state.what, state.budget = str(item.get("what") or ""), float(item.get("budget") or 0.0)
            state.elapsed, state.seen_at = float(item.get("elapsed") or 0.0), t
            self._flush_phase(state)
            self.view.wait(state, item)
        elif kind == "note":
            state.what = str(item.get("text") or "")
            self.view.wait(state, item)
        elif kind == "row":
            state.verdict, state.category = item.get("verdict"), item.get("category")

    def finish(self, node: str, outcome: str) -> None:
        """The test of `node` is over: its row's verdict, else pytest's outcome."""
        state = self.scenarios.get(node)
        if state is None or state.ended is not None:
            return
        self._flush_phase(state)
        state.ended = time.time()
        if state.verdict is None or outcome == "failed" and state.verdict == "pass":
            state.verdict = verdict_of_outcome(outcome)
        self.view.finished(state)

    def finish_all(self) -> None:
        for node in list(self.scenarios):
            self.finish(node, "interrupted")

    def running(self) -> list[ScenarioState]:
        return [s for s in list(self.scenarios.values()) if s.ended is None]   # list(): one step under the GIL

    def _flush_phase(self, state: ScenarioState) -> None:
        if not state.phase_shown:
            state.phase_shown = True
            self.view.phase(state)


class PlainView:
    """Lines for a log. Under GitHub Actions each scenario's lines are one collapsible group; a
    scenario running beside the one whose group is open keeps its lines until that group closes,
    so groups never interleave."""

    def __init__(self, write: Callable[[str], None], level: int = NORMAL, github: bool = False) -> None:
        self._write = write
        self._level = level
        self._github = github
        self._open: str | None = None
        self._held: dict[str, list[str]] = {}
        self._titles: dict[str, str] = {}
        self._done: set[str] = set()

    def phase(self, state: ScenarioState) -> None:
        if self._level >= NORMAL:
            self._line(state, phase_line(state))

    def wait(self, state: ScenarioState, event: Event) -> None:
        if self._level >= VERBOSE:
            self._line(state, wait_line(state, event))

    def finished(self, state: ScenarioState) -> None:
        self._line(state, finished_line(state))
        if not self._github:
            return
        self._done.add(state.node)
        if self._open == state.node:
            self._write("::endgroup::")
            self._open = None
            self._next_group()

    def close(self) -> None:
        if not self._github:
            return
        self._done.update(self._held)
        if self._open is not None:
            self._write("::endgroup::")
            self._open = None
        self._next_group()

    def _line(self, state: ScenarioState, text: str) -> None:
        if not self._github:
            self._write(text)
            return
        self._titles[state.node] = state.label
        self._held.setdefault(state.node, []).append(text)
        if self._open is None:
            self._open_group(state.node)
        elif self._open == state.node:
            for line in self._held.pop(state.node, []):
                self._write(line)

    def _open_group(self, node: str) -> None:
        self._open = node
        self._write(f"::group::{self._titles.get(node, node)}")
        for line in self._held.pop(node, []):
            self._write(line)

    def _next_group(self) -> None:
        while self._held and self._open is None:
            node = next(iter(self._held))
            self._open_group(node)
            if node in self._done:
                self._write("::endgroup::")
                self._open = None


class LiveView:
    """One line per running scenario, redrawn in place; a finished scenario becomes one coloured row
    above them."""

    def __init__(self, running: Callable[[], list[ScenarioState]], stream: IO[str], level: int = NORMAL) -> None:
        from rich.console import Console
        from rich.live import Live

        self._running = running
        self._level = level
        self._stream = stream
        self.console = Console(file=stream, highlight=False, force_terminal=True, width=self._width())
        self._live: Any = None
        if level >= NORMAL:
            self._live = Live(_Running(self), console=self.console, refresh_per_second=8, transient=True,
                              redirect_stdout=False, redirect_stderr=False)
            self._live.start()

    def phase(self, state: ScenarioState) -> None:
        pass

    def wait(self, state: ScenarioState, event: Event) -> None:
        if self._level >= VERBOSE:
            from rich.text import Text

            self.console.print(Text(wait_line(state, event), style="dim"))

    def finished(self, state: ScenarioState) -> None:
        from rich.text import Text

        row = Text()
        row.append(f"{'✔' if state.verdict == 'pass' else '✘'} {state.verdict_text():<24}",
                   style=VERDICT_STYLES.get(str(state.verdict), "bold"))
        row.append(f" {state.label}")
        row.append(f"  {(state.ended or time.time()) - state.started:.1f} s", style="dim")
        self.console.print(row)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _width(self) -> int:
        """The terminal's width, read from the display's own descriptor: pytest's capture swaps
        the process's standard ones for files while a test runs."""
        try:
            return os.get_terminal_size(self._stream.fileno()).columns
        except (OSError, ValueError):
            return 100

    def rows(self) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        self.console.width = self._width()   # follows a resized terminal
        grid = Table.grid(padding=(0, 1))
        grid.add_column("scenario", no_wrap=True)
        grid.add_column("phase", no_wrap=True, style="bold")
        grid.add_column("waits for", no_wrap=True, overflow="ellipsis", ratio=1)
        grid.add_column("bar", no_wrap=True, width=20)
        grid.add_column("time", no_wrap=True)
        now = time.time()
        for state in self._running():
            budget = state.budget or 0.0
            elapsed = min(state.wait_elapsed(now), budget) if budget else 0.0
            if not budget:   # a phase that waits for nothing has no bar
                grid.add_row(Text(state.label), Text(state.phase), Text(state.what), Text(""), Text(""))
                continue
            bar = ProgressBar(total=budget, completed=elapsed, width=20,
                              complete_style="red" if elapsed >= budget else "cyan")
            grid.add_row(Text(state.label), Text(state.phase), Text(state.what), bar,
                         Text(f"{elapsed:.2f}/{budget:.2f} s budget"))
        return grid


class _Running:
    def __init__(self, view: LiveView) -> None:
        self._view = view

    def __rich__(self) -> Any:
        return self._view.rows()


def coloured_summary(table: str, verdicts: list[str]) -> Any:
    """The summary table as rich text, each scenario's line in its verdict's colour (the table's
    first two lines are its header and rule, then one line per row)."""
    from rich.text import Text

    text = Text()
    for i, line in enumerate(table.splitlines()):
        style = "bold" if i == 0 else ""
        if 2 <= i < 2 + len(verdicts):
            style = VERDICT_STYLES.get(verdicts[i - 2].split(" ")[0], "")
        text.append(line + "\n", style=style)
    return text
