"""Modules loaded on first use behave as imported ones, submodules included."""

from __future__ import annotations

import subprocess
import sys


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
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "a@b.example"
