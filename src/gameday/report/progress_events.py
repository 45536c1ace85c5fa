"""Progress events: what a running scenario is doing, as JSON lines in the run folder.

A worker process appends its own file (`progress/<worker>.jsonl`, one `write` per line, flushed), and
the process that owns the terminal reads every file of the folder as it grows: xdist workers never
write to the terminal, and a line is never torn between two writers. The folder stays with the run
as a record of its waits.

Every phase of a scenario is an Allure step (`reporting.phase`), so phases are followed through
allure-python's own hook for steps, which sees each phase as it starts.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROGRESS_DIR = "progress"
Event = dict[str, Any]


def progress_dir(run_dir: Path) -> Path:
    return Path(run_dir) / PROGRESS_DIR


def current_node() -> str:
    """The running test's node id (pytest keeps it in PYTEST_CURRENT_TEST: "<node id> (<stage>)")."""
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    return current.rsplit(" (", 1)[0]


def current_label(node: str) -> str:
    """`scenario [region]` from the run record being recorded, else the test's name."""
    from gameday.report.allure import current_record

    record = current_record()
    if record is not None and record.scenario:
        return f"{record.scenario} [{record.failed_region or 'every region'}]"
    return node.rsplit("::", 1)[-1] or "game day"


def event(kind: str, **data: Any) -> Event:
    node = current_node()
    return {"t": time.time(), "kind": kind, "node": node, "label": current_label(node), **data}


class EventFile:
    """Append-only JSON lines of one process."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()

    def append(self, item: Event) -> None:
        line = json.dumps(item, default=str) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(line)


class EventTail:
    """The new complete lines of every event file in a folder, in the order each file got them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._offsets: dict[Path, int] = {}

    def read(self) -> list[Event]:
        found: list[Event] = []
        if not self.folder.is_dir():
            return found
        for path in sorted(self.folder.glob("*.jsonl")):
            offset = self._offsets.get(path, 0)
            try:
                with path.open("rb") as source:
                    source.seek(offset)
                    chunk = source.read()
            except OSError:
                continue
            complete = chunk[: chunk.rfind(b"\n") + 1]   # a line still being written waits for its end
            self._offsets[path] = offset + len(complete)
            for line in complete.splitlines():
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue
        found.sort(key=lambda item: float(item.get("t", 0.0)))
        return found


def follow_phases(on_phase: Callable[[str], None]) -> Callable[[], None]:
    """Call `on_phase(name)` as each phase of a run record starts; returns what stops it."""
    import allure_commons

    from gameday.report.allure import current_record

    class _PhaseSteps:
        @allure_commons.hookimpl
        def start_step(self, uuid: str, title: str, params: Any) -> None:
            record = current_record()
            if record is not None and record.phases and record.phases[-1].name == title:
                on_phase(title)

    follower = _PhaseSteps()
    allure_commons.plugin_manager.register(follower)
    return lambda: allure_commons.plugin_manager.unregister(follower)
