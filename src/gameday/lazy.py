"""Modules loaded on first use: a game-day module names the libraries it works with at the top, as
usual, but a run that only collects (or selects nothing) never pays for numpy, matplotlib, boto3
or requests. The module object is in sys.modules at once and executes on the first read of an
attribute it does not have yet. A dotted name imports its parent package at once (as the import
system must, to find the submodule): keep those parents light. Not for the namespace of a pytest
test module: collection inspects every name a test module holds, which loads the module.

Why not importlib.util.LazyLoader: before Python 3.12.3 it is not thread-safe. Its module turns
into a plain module before executing, so a second thread reading an attribute meanwhile gets an
AttributeError (the traffic's worker threads resolving their first name at once did). Here the
first read takes the module's lock and executes it; a read that arrives meanwhile waits for it.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any


class _OnFirstUse(ModuleType):
    """A module whose code runs when an attribute it lacks is first read (under its own lock)."""

    def __getattr__(self, attr: str) -> Any:   # only for attributes the module does not have (yet)
        state = self.__dict__.get("_gameday_lazy")
        if state is not None:
            with state[0]:
                current = self.__dict__.get("_gameday_lazy")
                if current is not None and not current[2]:   # not executed, nor executing in this thread
                    current[2] = True
                    if current[3] is not None:
                        self.__dict__["__path__"] = current[3]
                    try:
                        current[1].loader.exec_module(self)
                    except BaseException:
                        sys.modules.pop(self.__name__, None)   # as a failed import leaves nothing behind
                        raise
                    finally:
                        self.__dict__.pop("_gameday_lazy", None)
                    self.__class__ = ModuleType   # type: ignore[assignment]
        try:
            return self.__dict__[attr]
        except KeyError:
            pass
        hook = self.__dict__.get("__getattr__")    # the module's own (PEP 562), as a plain module calls it
        if hook is not None:
            return hook(attr)
        raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r}")


def lazy_module(name: str) -> ModuleType:
    """`name`, imported now if it already is (or if only an eager loader can load it), else on first
    attribute access."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    if not hasattr(spec.loader, "exec_module") or spec.loader.create_module(spec) is not None:
        return importlib.import_module(name)      # an extension module: its loader makes the object
    module = importlib.util.module_from_spec(spec)
    module.__class__ = _OnFirstUse
    # A package's __path__ waits with the rest: the import system reads it to import a submodule,
    # which must find the package executed (as an import of the submodule would have done).
    path = module.__dict__.pop("__path__", None)
    module.__dict__["_gameday_lazy"] = [threading.RLock(), spec, False, path]   # lock, spec, executing, __path__
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:  # as the import system does: `import a.b` then `a.b` must reach the submodule
        setattr(sys.modules[parent], child, module)
    return module
