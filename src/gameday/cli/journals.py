"""Finding the journal a run wrote, for `gameday restore` after a killed run: each run records where
its journal is, in the user's state folder, so restore finds it whatever --report-dir the run used."""

from __future__ import annotations

import json
import os
from pathlib import Path

from gameday.errors import UsageError

STATE_ENV = "GAMEDAY_STATE_DIR"
POINTER = "latest-journal"


def state_dir() -> Path:
    """$GAMEDAY_STATE_DIR, else $XDG_STATE_HOME/gameday, else ~/.local/state/gameday."""
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "gameday"


def remember_journal(journal: Path) -> None:
    """Note `journal` as the latest run's (best effort: a read-only home must not stop a game day)."""
    try:
        folder = state_dir()
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{POINTER}.{os.getpid()}"
        tmp.write_text(str(journal.resolve()) + "\n")
        os.replace(tmp, folder / POINTER)
    except OSError:
        pass


def latest_journal() -> tuple[Path | None, str]:
    """(the latest run's journal, or None; where that was looked up, for the message)."""
    pointer = state_dir() / POINTER
    try:
        recorded = Path(pointer.read_text().strip())
    except OSError:
        return None, str(pointer)
    return (recorded if recorded.is_file() else None), f"{pointer} -> {recorded}"


def check_journal(journal: Path, option: str) -> None:
    """A journal is a file of JSON entries (a torn last line, from a crash mid-write, is allowed):
    a folder, or a file with no entry at all, is a usage error naming the option."""
    if journal.is_dir():
        raise UsageError(f"{option}: expected a journal file, got a folder: {journal}")
    try:
        lines = [line for line in journal.read_text(errors="replace").splitlines() if line.strip()]
    except OSError as exc:
        raise UsageError(f"{option}: cannot read {journal}: {exc.strerror}") from None
    entries = 0
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        entries += isinstance(entry, dict) and "id" in entry and "fault" in entry
    if lines and not entries:
        raise UsageError(f"{option}: {journal} is not a gameday fault journal (no entry in {len(lines)} lines)")
