"""The journal file: a crash-safe record of every fault injected, kept before each change is made.

Why JSON lines, append-only: every state change is one line written with a single
write() and fsync'ed before the change it announces is made, so a run killed at
any instant (even SIGKILL) leaves a journal that says what to undo. A torn last
line (killed mid-write) is ignored; the newest line of an entry wins.

Entry shape (fixed, one per fault):
  {"id", "fault", "target": {"region", "function", "endpoint", "function_arn"?, "account"?},
   "before": {"variables": {KEY: {"present": bool, "value": str|None}},   # only the keys we change
              "fingerprint": {"salt", "sha256"}},                          # whole env, salted hash only
   "change": {KEY: new value},
   "after": {"fingerprint"} | None,                                        # set once the change is applied
   "state": "injected" | "restored" | "restore_failed",
   "times": {"recorded", "injected", "restored", ...}, "error": str|None, "drift": bool, "pid": int}
"injected" is written BEFORE the change is made (it means "may be injected"): restoring an
entry whose change never happened finds the original values in place and writes nothing.
The whole environment is never written: it may hold secrets.

Why the function's ARN: a name is unique only within one account and region. Two teams (or a
profile switched between a run and its repair) can each have a `gameday-Health`; `gameday
restore` must act on the function the fault changed and no other. The ARN comes from the
GetFunctionConfiguration the fault makes right before journalling (lambda_env notes it here,
in the same thread), so no fault needs an extra call or its own bookkeeping.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gameday.errors import GamedayError

DEFAULT_JOURNAL_PATH = Path("reports/journal.jsonl")
JOURNAL_ENV_VAR = "GAMEDAY_JOURNAL"
INJECTED, RESTORED, RESTORE_FAILED = "injected", "restored", "restore_failed"
UNRESTORED_STATES = (INJECTED, RESTORE_FAILED)
ANY_ENDPOINT = object()


class FaultAlreadyInjected(GamedayError):
    """The journal holds an unrestored fault on this target: refuse to stack another."""


def default_journal_path() -> Path:
    """$GAMEDAY_JOURNAL, else reports/journal.jsonl (relative to the working directory)."""
    return Path(os.environ.get(JOURNAL_ENV_VAR) or DEFAULT_JOURNAL_PATH)


def env_fingerprint(env: dict[str, str], salt: str | None = None) -> dict[str, str]:
    """A salted hash of a whole environment: detects drift without storing any value."""
    salt = salt or secrets.token_hex(8)
    canonical = json.dumps(env, sort_keys=True, separators=(",", ":"))
    return {"salt": salt, "sha256": hashlib.sha256((salt + canonical).encode()).hexdigest()}


def fingerprint_matches(env: dict[str, str], fingerprint: dict[str, str] | None) -> bool:
    if not fingerprint:
        return True
    return env_fingerprint(env, fingerprint["salt"])["sha256"] == fingerprint["sha256"]


def same_target(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same function: by ARN when both entries know it, else by region, name and endpoint."""
    if a.get("function_arn") and b.get("function_arn"):
        return (a["function_arn"], a.get("endpoint")) == (b["function_arn"], b.get("endpoint"))
    return (a.get("region"), a.get("function"), a.get("endpoint")) == \
           (b.get("region"), b.get("function"), b.get("endpoint"))


class _ReadFunctions(threading.local):
    """(region, function name) -> ARN, as this thread last read them with GetFunctionConfiguration."""

    def __init__(self) -> None:
        self.arns: dict[tuple[str, str], str] = {}


_READ = _ReadFunctions()


def note_function_arn(region: str, function: str, arn: str) -> None:
    """Remember the ARN a GetFunctionConfiguration returned (called by lambda_env on every read)."""
    _READ.arns[(region, function)] = arn
    _READ.arns[(region, arn)] = arn


def account_of_arn(arn: str) -> str | None:
    """The account field of an ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME), None if malformed."""
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 and parts[0] == "arn" else None


def with_function_arn(target: dict[str, Any]) -> dict[str, Any]:
    """`target` with the function's ARN and account, when this thread has read the function."""
    out = dict(target)
    if out.get("function_arn") or not out.get("function") or not out.get("region"):
        return out
    arn = _READ.arns.get((str(out["region"]), str(out["function"])))
    if arn:
        out["function_arn"] = arn
        out["account"] = account_of_arn(arn)
    return out


class Journal:
    """The journal file. Safe to share between processes (appends under an flock)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_journal_path()

    # -- reading -------------------------------------------------------------------
    def entries(self) -> list[dict[str, Any]]:
        """Every entry in its latest state, oldest first."""
        latest: dict[str, dict[str, Any]] = {}
        try:
            with open(self.path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        for line in lines:
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # torn line from a killed writer: the previous line of that entry stands
            if isinstance(entry, dict) and "id" in entry:
                latest.pop(entry["id"], None)
                latest[entry["id"]] = entry
        return list(latest.values())

    def get(self, entry_id: str) -> dict[str, Any] | None:
        for entry in self.entries():
            if entry["id"] == entry_id:
                return entry
        return None

    def pending(self, endpoint: Any = ANY_ENDPOINT) -> list[dict[str, Any]]:
        """Unrestored entries; with `endpoint` (None = AWS itself), only those made against it."""
        found = [e for e in self.entries() if e.get("state") in UNRESTORED_STATES]
        if endpoint is not ANY_ENDPOINT:
            found = [e for e in found if e.get("target", {}).get("endpoint") == endpoint]
        return found

    # -- writing -------------------------------------------------------------------
    def begin(self, fault: str, target: dict[str, Any], before: dict[str, Any],
              change: dict[str, Any]) -> dict[str, Any]:
        """Record a fault about to be injected (call BEFORE changing anything).

        Refuses (FaultAlreadyInjected) when an unrestored entry exists for the same
        fault on the same target; check and append happen under one lock.
        """
        now = time.time()
        target = with_function_arn(target)
        entry = {
            "id": uuid.uuid4().hex, "fault": fault, "target": target, "before": before,
            "change": change, "after": None, "state": INJECTED, "times": {"recorded": now}, "error": None,
            "drift": False, "pid": os.getpid(),
        }
        with self._locked() as f:
            for other in self._read_locked(f):
                if other.get("state") in UNRESTORED_STATES and other.get("fault") == fault \
                        and same_target(other.get("target", {}), target):
                    raise FaultAlreadyInjected(
                        f"{fault} is already injected on {target.get('function')} in {target.get('region')} "
                        f"(journal {self.path}, entry {other['id']}, state {other['state']}); "
                        f"run `gameday restore --journal {self.path}` first")
            self._append_locked(f, entry)
        return entry

    def update(self, entry: dict[str, Any], **changes: Any) -> dict[str, Any]:
        """Append a new version of `entry` with `changes`; `times` are merged."""
        new = dict(entry)
        times = dict(entry.get("times", {}))
        times.update(changes.pop("times", {}))
        new.update(changes)
        new["times"] = times
        with self._locked() as f:
            self._append_locked(f, new)
        entry.clear()
        entry.update(new)
        return entry

    def mark_injected(self, entry: dict[str, Any]) -> dict[str, Any]:
        return self.update(entry, state=INJECTED, times={"injected": time.time()})

    def mark_restored(self, entry: dict[str, Any], drift: bool = False) -> dict[str, Any]:
        return self.update(entry, state=RESTORED, error=None, drift=drift or entry.get("drift", False),
                           times={"restored": time.time()})

    def mark_restore_failed(self, entry: dict[str, Any], error: str) -> dict[str, Any]:
        return self.update(entry, state=RESTORE_FAILED, error=error[:500],
                           times={"restore_failed": time.time()})

    # -- file plumbing -------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[Any]:
        created = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+", encoding="utf-8") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield f
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        if created:
            _fsync_dir(self.path.parent)  # the new file's directory entry survives a crash too

    @staticmethod
    def _read_locked(f: Any) -> list[dict[str, Any]]:
        f.seek(0)
        latest: dict[str, dict[str, Any]] = {}
        for line in f.read().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and "id" in entry:
                latest[entry["id"]] = entry
        return list(latest.values())

    @staticmethod
    def _append_locked(f: Any, entry: dict[str, Any]) -> None:
        f.seek(0, os.SEEK_END)
        if f.tell() > 0:
            f.seek(f.tell() - 1)
            last = f.read(1)
            f.seek(0, os.SEEK_END)
            if last != "\n":
                f.write("\n")  # terminate a torn line so ours parses
        f.write(json.dumps(entry, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
