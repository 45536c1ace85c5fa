"""The catalog judges with categorised failures, never bare asserts: a catalog run does not
rewrite assertions (start-up cost), so a bare assert there would fail without its values."""

from __future__ import annotations

import ast
from pathlib import Path

from gameday.cli.run import catalog_dir


def test_no_catalog_module_uses_a_bare_assert() -> None:
    found = [f"{path.name}:{node.lineno}" for path in sorted(Path(catalog_dir()).glob("*.py"))
             for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Assert)]
    assert not found, found
