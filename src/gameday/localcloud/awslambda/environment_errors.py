"""Lambda functions whose environment variables cannot be decrypted, as AWS reports them.

Why: when a function's customer KMS key is disabled or its use denied, GetFunctionConfiguration
returns `Environment.Error {ErrorCode, Message}` instead of `Environment.Variables` (Lambda API
reference, EnvironmentResponse / EnvironmentError). A harness that reads a missing map as `{}`
and writes a merged map back would wipe every variable; the local cloud must be able to show
that answer so the refusal is tested. moto never produces it: its `get_configuration` is wrapped,
and the control route below marks a function (by region and name) as undecryptable.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from gameday.localcloud.awslambda import update_status
from gameday.localcloud.motoglue import access as moto_access
from gameday.localcloud.motoglue import patches

GET_CONFIGURATION = patches.declare(
    "moto.awslambda.models:LambdaFunction.get_configuration", kind="wrap",
    signature="(self, on_create: 'bool' = False) -> 'dict[str, Any]'",
    why="Environment.Error instead of Variables for functions marked undecryptable (a KMS key denied), "
        "and LastUpdateStatus InProgress while a configuration update is being applied")

DEFAULT_ERROR = {
    "ErrorCode": "KMSAccessDeniedException",
    "Message": "Lambda was unable to decrypt the environment variables because KMS access was denied. "
               "Please check the function's KMS key settings.",
}

_lock = threading.Lock()
_errors: dict[str, dict[str, str]] = {}     # function ARN -> EnvironmentError


def _wrap(original: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    def get_configuration(self: Any, on_create: bool = False) -> dict[str, Any]:
        config = update_status.report(self, original(self, on_create))
        error = _errors.get(getattr(self, "function_arn", ""))
        if error is not None:
            config["Environment"] = {"Error": dict(error)}
        return config

    return get_configuration


def install() -> None:
    """Apply the wrap (idempotent)."""
    if not getattr(GET_CONFIGURATION, "_applied", False):
        GET_CONFIGURATION.apply(_wrap(GET_CONFIGURATION.original()))


def control_routes(add: Callable[[str, str, Callable[[dict[str, str], Any], tuple[int, Any]]], None]) -> None:
    """POST /_gameday/lambda/environment-error {region, function, error?: {ErrorCode, Message}, clear?: bool}."""
    install()

    def change(_query: dict[str, str], body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not body.get("region") or not body.get("function"):
            raise ValueError('expected {"region": ..., "function": ..., "clear": false}')
        function = moto_access.awslambda(str(body["region"])).get_function(str(body["function"]))
        arn = function.function_arn
        with _lock:
            if body.get("clear"):
                _errors.pop(arn, None)
            else:
                _errors[arn] = dict(body.get("error") or DEFAULT_ERROR)
        return 200, {"function_arn": arn, "error": _errors.get(arn)}

    add("POST", "/_gameday/lambda/environment-error", change)
