"""GetFunction shows a reserved concurrency of 0, as Lambda does.

Why: Lambda's GetFunction answers `Concurrency {ReservedConcurrentExecutions: 0}` for a function
throttled entirely, and nothing for one without reserved concurrency. moto leaves the key out for 0
(it tests the value for truth), so "throttled" and "none reserved" read alike there, and a check
that a throttle took effect (or that a restore put "none" back) could not tell them apart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gameday.localcloud.motoglue import patches

GET_CODE = patches.declare(
    "moto.awslambda.models:LambdaFunction.get_code", kind="wrap",
    signature="(self) -> 'dict[str, Any]'",
    why="GetFunction's Concurrency block for a reserved concurrency of 0 (moto omits it)")


def _wrap(original: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    def get_code(self: Any) -> dict[str, Any]:
        answer = original(self)
        reserved = getattr(self, "reserved_concurrency", None)
        if reserved is not None and "Concurrency" not in answer:
            answer["Concurrency"] = {"ReservedConcurrentExecutions": int(reserved)}
        return answer

    return get_code


def install() -> None:
    """Apply the wrap (idempotent)."""
    if not getattr(GET_CODE, "_applied", False):
        GET_CODE.apply(_wrap(GET_CODE.original()))
