"""Modules loaded on first use behave as imported ones, submodules included."""

from __future__ import annotations

import subprocess
import sys


def run_python(code: str) -> str:
    """What a fresh interpreter running `code` prints (it must exit 0)."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_a_lazy_submodule_is_reachable_from_its_package_and_loads_on_first_use() -> None:
    code = (
        "import sys\n"
        "from gameday.lazy import lazy_module\n"
        "parsed = lazy_module('email.headerregistry')\n"
        "assert 'email.headerregistry' in sys.modules\n"
        "import email.headerregistry\n"
        "assert email.headerregistry is parsed\n"
        "print(email.headerregistry.Address(username='a', domain='b.example'))\n"
    )
    assert run_python(code) == "a@b.example"


def test_threads_reading_a_lazy_module_at_once_all_wait_for_its_one_execution(tmp_path) -> None:
    """The module takes a while to execute; every thread's first read must see it whole, and it
    must execute once (the traffic's workers resolve their first name together)."""
    (tmp_path / "slow_to_import.py").write_text(
        "import time\nRUNS = globals().get('RUNS', 0) + 1\ntime.sleep(0.3)\nVALUE = 42\n")
    code = (
        "import sys, threading\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "from gameday.lazy import lazy_module\n"
        "slow = lazy_module('slow_to_import')\n"
        "seen, errors = [], []\n"
        "def read():\n"
        "    try:\n"
        "        seen.append(slow.VALUE)\n"
        "    except Exception as exc:\n"
        "        errors.append(repr(exc))\n"
        "threads = [threading.Thread(target=read) for _ in range(8)]\n"
        "[t.start() for t in threads]\n"
        "[t.join() for t in threads]\n"
        "print(seen, errors, slow.RUNS)\n"
    )
    assert run_python(code) == f"{[42] * 8} [] 1"
