"""The one door to moto's in-memory backends. Nothing outside gameday/localcloud imports moto."""

from __future__ import annotations

import functools
from typing import Any

from moto.backends import get_backend

from gameday.localcloud.process.context import ACCOUNT_ID


def dynamodb(region: str) -> Any:
    return get_backend("dynamodb")[ACCOUNT_ID][region]


def awslambda(region: str) -> Any:
    return get_backend("lambda")[ACCOUNT_ID][region]


def apigateway(region: str) -> Any:
    return get_backend("apigateway")[ACCOUNT_ID][region]


def route53() -> Any:
    return get_backend("route53")[ACCOUNT_ID]["global"]


def cloudwatch(region: str) -> Any:
    return get_backend("cloudwatch")[ACCOUNT_ID][region]


def cloudformation(region: str) -> Any:
    return get_backend("cloudformation")[ACCOUNT_ID][region]


@functools.cache
def _backends(service: str) -> Any:
    """moto's BackendDict of a service: one object for the process (a reset empties it in place)."""
    return get_backend(service)  # type: ignore[call-overload]


def iam() -> Any:
    """IAM is global: one backend per partition. Looked up on every authorised request, hence cached."""
    return _backends("iam")[ACCOUNT_ID]["aws"]


def sts() -> Any:
    return _backends("sts")[ACCOUNT_ID]["aws"]
