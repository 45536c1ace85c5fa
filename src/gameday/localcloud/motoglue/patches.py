"""Every place where the local cloud reaches into moto internals, declared in one registry.

moto is pinned (pyproject.toml). Each component declares its patch points at import
time with `declare(...)` and applies them with `PatchPoint.apply(...)` when the cloud
starts. tests/localcloud/test_patch_points.py calls `problems()` so that a moto upgrade that
moves or changes a patched internal fails a test instead of silently breaking physics.

Kinds:
  replace  - the attribute exists and is replaced (its signature is checked if given)
  wrap     - the attribute exists and is wrapped (same check)
  add      - the owner exists and the attribute must NOT exist in moto (if moto grows
             its own implementation, we want to know)
  call     - the attribute is called as it is, never replaced (same check); apply() refuses
"""

from __future__ import annotations

import importlib
import inspect
import threading
from dataclasses import dataclass, field
from typing import Any

_LOCK = threading.Lock()
_REGISTRY: dict[str, PatchPoint] = {}


@dataclass
class PatchPoint:
    target: str              # "moto.dynamodb.models.table:StreamShard.add"
    why: str
    kind: str = "replace"    # replace | wrap | add | call
    signature: str | None = None  # str(inspect.signature(original)) we were written against
    _original: Any = field(default=None, repr=False)
    _applied: bool = field(default=False, repr=False)

    def _split(self) -> tuple[Any, str]:
        module_name, _, path = self.target.partition(":")
        owner: Any = importlib.import_module(module_name)
        *owner_path, attr = path.split(".")
        for part in owner_path:
            owner = getattr(owner, part)
        return owner, attr

    def original(self) -> Any:
        owner, attr = self._split()
        if self._applied:
            return self._original
        return getattr(owner, attr, None)

    def problems(self) -> list[str]:
        try:
            owner, attr = self._split()
        except (ImportError, AttributeError) as exc:
            return [f"{self.target}: owner not found ({exc})"]
        current = self._original if self._applied else getattr(owner, attr, None)
        if self.kind == "add":
            if current is not None and not self._applied:
                return [f"{self.target}: moto now defines this attribute; review our addition"]
            return []
        if current is None:
            return [f"{self.target}: attribute not found"]
        if self.signature is not None:
            try:
                actual = str(inspect.signature(current))
            except (TypeError, ValueError):
                actual = "<no signature>"
            if actual != self.signature:
                return [f"{self.target}: signature changed: expected {self.signature}, found {actual}"]
        return []

    def apply(self, replacement: Any) -> None:
        """Install `replacement` (idempotent: a second call replaces the replacement)."""
        if self.kind == "call":
            raise TypeError(f"{self.target} is declared to be called, not replaced")
        with _LOCK:
            owner, attr = self._split()
            if not self._applied:
                self._original = getattr(owner, attr, None)
                issues = self.problems()
                if issues:
                    raise RuntimeError("; ".join(issues))
            setattr(owner, attr, replacement)
            self._applied = True


def declare(target: str, *, why: str, kind: str = "replace", signature: str | None = None) -> PatchPoint:
    if kind not in ("replace", "wrap", "add", "call"):
        raise ValueError(kind)
    with _LOCK:
        point = _REGISTRY.get(target)
        if point is None:
            point = PatchPoint(target=target, why=why, kind=kind, signature=signature)
            _REGISTRY[target] = point
        return point


def all_points() -> list[PatchPoint]:
    with _LOCK:
        return list(_REGISTRY.values())


def problems() -> list[str]:
    found: list[str] = []
    for point in all_points():
        found.extend(point.problems())
    return found
