"""The cloud process that LocalCloud starts dies with the process that started it.

LocalCloud starts the cloud in a session of its own (start_new_session=True), so that a terminal's
Ctrl-C or hang-up reaches only the parent, which then stops the cloud in order. The price: when
the parent dies without stopping it (SIGKILL, a crash), nothing tells the cloud, which would serve
on for ever and hold its ports and memory. So the cloud watches its parent two ways:

- Linux: prctl(PR_SET_PDEATHSIG) has the kernel send SIGHUP the moment the parent dies. The kernel
  sends it when the parent *thread* that started the process exits, too (a LocalCloud started from
  a worker thread); the handler tells the two apart by os.getppid(), which only changes when the
  parent process is gone (the cloud is re-parented to init or a subreaper).
- Everywhere: a daemon thread polls os.getppid() (the fallback where prctl is missing or refused).

Either way the cloud is asked to stop as LocalCloud.stop() asks it (SIGTERM to itself, so the
usual orderly stop runs), and if it has not exited GRACE_S later it exits at once.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from types import FrameType

PR_SET_PDEATHSIG = 1        # <linux/prctl.h>
DEATH_SIGNAL = signal.SIGHUP  # not SIGTERM: a parent thread's exit must not stop the cloud
POLL_INTERVAL_S = 0.5
GRACE_S = 5.0               # for the orderly stop; after it, exit without one
ORPHANED_EXIT_CODE = 70

_gone = threading.Event()
_first = threading.Lock()     # taken once, never released: the first to notice acts (signal-safe)


def die_with_parent(parent_pid: int) -> None:
    """Stop this process once `parent_pid` is no longer its parent. Call it from the main thread
    (it sets a signal handler), first thing in main: a parent that died before this call is
    noticed too."""

    def on_death_signal(_signum: int, _frame: FrameType | None) -> None:
        _check(parent_pid)

    signal.signal(DEATH_SIGNAL, on_death_signal)  # before prctl: the signal never meets the default action
    _request_death_signal()
    threading.Thread(target=_poll, args=(parent_pid,), name="parent-watch", daemon=True).start()
    _check(parent_pid)


def _request_death_signal() -> bool:
    """PR_SET_PDEATHSIG (Linux only); False where it is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(DEATH_SIGNAL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _poll(parent_pid: int) -> None:
    while not _gone.is_set():
        _check(parent_pid)
        time.sleep(POLL_INTERVAL_S)


def _check(parent_pid: int) -> None:
    if os.getppid() != parent_pid:
        _parent_gone(parent_pid)


def _parent_gone(parent_pid: int) -> None:
    if not _first.acquire(blocking=False):
        return
    _gone.set()
    try:
        print(f"gameday local: the process that started this cloud (pid {parent_pid}) is gone: stopping",
              file=sys.stderr, flush=True)
    except (OSError, RuntimeError):  # stderr closed, or busy in the thread this handler interrupted
        pass
    deadline = threading.Timer(GRACE_S, os._exit, args=(ORPHANED_EXIT_CODE,))
    deadline.daemon = True
    deadline.start()
    os.kill(os.getpid(), signal.SIGTERM)
