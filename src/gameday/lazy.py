"""Modules loaded on first use: a game-day module names the libraries it works with at the top, as
usual, but a run that only collects (or selects nothing) never pays for numpy, matplotlib, boto3
or requests. Built on importlib.util.LazyLoader: the module object exists at once and executes
on its first attribute access. A dotted name imports its parent package at once (as the import
system must, to find the submodule): keep those parents light. Not for the namespace of a pytest
test module: collection inspects every name a test module holds, which loads the module.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_module(name: str) -> ModuleType:
    """`name`, imported now if it already is, else on first attribute access."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent:  # as the import system does: `import a.b` then `a.b` must reach the submodule
        setattr(sys.modules[parent], child, module)
    return module
