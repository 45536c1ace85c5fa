"""The reference Lambda handlers (package data, not a package), imported by path as Lambda would."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from gameday import infra


def load_handler(name: str) -> ModuleType:
    path = infra.functions_dir() / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"reference_handler_{name}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
